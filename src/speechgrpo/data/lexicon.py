"""The English-German lexicon of the synthetic spoken tasks: nouns with gender, plurals and weak
(n-declension) forms, adjectives with their inflection stems, verbs with both languages' forms and the
case they govern, prepositions of place, time and frequency adverbs, names and cities.

Entries are ``|``-separated rows parsed at import. German forms are spelled out wherever they are
irregular (``teuer`` inflects on ``teur-``, ``der Junge`` is ``den Jungen``, an animal ``frisst``), so
the grammar in :mod:`speechgrpo.data.synthetic_ast` only applies regular endings. Kind tags say which
nouns a verb or adjective goes with, so that generated sentences make sense (``single``: no plural,
*my fathers*; ``stranger``: no possessive, *our woman*).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Noun:
    """``weak`` is the singular accusative/dative form of an n-declension noun (``Jungen``), else ''.
    ``mass`` nouns (``milk``) have no plural and take no indefinite article."""

    en: str
    en_plural: str
    de: str
    de_plural: str
    gender: str  # "m", "f", "n"
    kinds: frozenset[str]
    weak: str = ""

    @property
    def mass(self) -> bool:
        return "mass" in self.kinds


@dataclass(frozen=True)
class Adjective:
    """``de_stem`` takes the endings (``teur`` + ``es``); ``order`` sorts stacked adjectives
    (1 opinion, 2 size, 3 age, 5 colour), as both languages do."""

    en: str
    de: str
    de_stem: str
    order: int
    kinds: frozenset[str]


@dataclass(frozen=True)
class Verb:
    """``frame``: "intr" (no object), "acc" (accusative object), "dat" (dative object), "ditr" (dative
    + accusative), "live" (needs a place: *lives in*), "travel" (needs a city: *travels to*).
    ``de_animal`` holds the 3sg/plural/participle used with an animal subject (*frisst*)."""

    en_3sg: str
    en_base: str
    en_past: str
    de_3sg: str
    de_plural: str
    de_participle: str
    aux: str  # "haben" or "sein"
    frame: str
    subjects: frozenset[str]
    objects: frozenset[str] = frozenset()
    recipients: frozenset[str] = frozenset()
    de_animal: tuple[str, str, str] | None = None


@dataclass(frozen=True)
class Place:
    """A place phrase: English preposition + German preposition (dative) + noun."""

    en_prep: str
    de_prep: str
    noun: Noun
    animals: bool  # an animal may be there


@dataclass(frozen=True)
class Adverb:
    en: str
    de: str
    tenses: frozenset[str]
    kind: str  # "time" or "freq"
    frontable: bool


def _kinds(text: str) -> frozenset[str]:
    return frozenset(k.strip() for k in text.split(",") if k.strip())


def _rows(table: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.split("|")] for line in table.strip().splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


# en | en plural | de | de plural | gender | kinds | weak form
_NOUNS = """
# people
man|men|Mann|Männer|m|person,stranger
woman|women|Frau|Frauen|f|person,stranger
child|children|Kind|Kinder|n|person
boy|boys|Junge|Jungen|m|person,stranger|Jungen
girl|girls|Mädchen|Mädchen|n|person,stranger
teacher|teachers|Lehrer|Lehrer|m|person
doctor|doctors|Arzt|Ärzte|m|person
student|students|Student|Studenten|m|person|Studenten
friend|friends|Freund|Freunde|m|person
neighbour|neighbours|Nachbar|Nachbarn|m|person|Nachbarn
cook|cooks|Koch|Köche|m|person
farmer|farmers|Bauer|Bauern|m|person|Bauern
baker|bakers|Bäcker|Bäcker|m|person
police officer|police officers|Polizist|Polizisten|m|person|Polizisten
driver|drivers|Fahrer|Fahrer|m|person
singer|singers|Sänger|Sänger|m|person
painter|painters|Maler|Maler|m|person
king|kings|König|Könige|m|person,stranger
queen|queens|Königin|Königinnen|f|person,stranger
grandmother|grandmothers|Großmutter|Großmütter|f|person,single
grandfather|grandfathers|Großvater|Großväter|m|person,single
brother|brothers|Bruder|Brüder|m|person
sister|sisters|Schwester|Schwestern|f|person
mother|mothers|Mutter|Mütter|f|person,single
father|fathers|Vater|Väter|m|person,single
son|sons|Sohn|Söhne|m|person
daughter|daughters|Tochter|Töchter|f|person
aunt|aunts|Tante|Tanten|f|person
uncle|uncles|Onkel|Onkel|m|person
tourist|tourists|Tourist|Touristen|m|person,stranger|Touristen
soldier|soldiers|Soldat|Soldaten|m|person|Soldaten
pilot|pilots|Pilot|Piloten|m|person|Piloten
waiter|waiters|Kellner|Kellner|m|person
customer|customers|Kunde|Kunden|m|person,stranger|Kunden
guest|guests|Gast|Gäste|m|person,stranger
artist|artists|Künstler|Künstler|m|person
writer|writers|Schriftsteller|Schriftsteller|m|person
lawyer|lawyers|Anwalt|Anwälte|m|person
worker|workers|Arbeiter|Arbeiter|m|person
musician|musicians|Musiker|Musiker|m|person
scientist|scientists|Wissenschaftler|Wissenschaftler|m|person
journalist|journalists|Journalist|Journalisten|m|person|Journalisten
gardener|gardeners|Gärtner|Gärtner|m|person
fisherman|fishermen|Fischer|Fischer|m|person
# animals
dog|dogs|Hund|Hunde|m|animal
cat|cats|Katze|Katzen|f|animal
horse|horses|Pferd|Pferde|n|animal
bird|birds|Vogel|Vögel|m|animal,prey
mouse|mice|Maus|Mäuse|f|animal,prey
cow|cows|Kuh|Kühe|f|animal
pig|pigs|Schwein|Schweine|n|animal
sheep|sheep|Schaf|Schafe|n|animal
fish|fish|Fisch|Fische|m|animal,prey
bear|bears|Bär|Bären|m|animal|Bären
lion|lions|Löwe|Löwen|m|animal|Löwen
monkey|monkeys|Affe|Affen|m|animal|Affen
rabbit|rabbits|Kaninchen|Kaninchen|n|animal,prey
elephant|elephants|Elefant|Elefanten|m|animal|Elefanten
duck|ducks|Ente|Enten|f|animal,prey
goat|goats|Ziege|Ziegen|f|animal
fox|foxes|Fuchs|Füchse|m|animal
wolf|wolves|Wolf|Wölfe|m|animal
chicken|chickens|Huhn|Hühner|n|animal,prey
frog|frogs|Frosch|Frösche|m|animal,prey
snake|snakes|Schlange|Schlangen|f|animal
donkey|donkeys|Esel|Esel|m|animal
owl|owls|Eule|Eulen|f|animal
# food and drink
apple|apples|Apfel|Äpfel|m|food,fruit
pear|pears|Birne|Birnen|f|food,fruit
banana|bananas|Banane|Bananen|f|food,fruit
orange|oranges|Orange|Orangen|f|food,fruit
lemon|lemons|Zitrone|Zitronen|f|food,fruit
strawberry|strawberries|Erdbeere|Erdbeeren|f|food,fruit
tomato|tomatoes|Tomate|Tomaten|f|food,cookable
potato|potatoes|Kartoffel|Kartoffeln|f|food,cookable
carrot|carrots|Karotte|Karotten|f|food,cookable
onion|onions|Zwiebel|Zwiebeln|f|food,cookable
cucumber|cucumbers|Gurke|Gurken|f|food
egg|eggs|Ei|Eier|n|food,cookable
sausage|sausages|Wurst|Würste|f|food,cookable
soup|soups|Suppe|Suppen|f|food,cookable,dish_hot
salad|salads|Salat|Salate|m|food
sandwich|sandwiches|Sandwich|Sandwiches|n|food
cake|cakes|Kuchen|Kuchen|m|food,bakeable
pizza|pizzas|Pizza|Pizzen|f|food,bakeable,dish_hot
cookie|cookies|Keks|Kekse|m|food,bakeable
bread|-|Brot|-|n|food,bakeable,mass
cheese|-|Käse|-|m|food,mass
rice|-|Reis|-|m|food,cookable,mass
honey|-|Honig|-|m|food,mass
chocolate|-|Schokolade|-|f|food,mass
coffee|-|Kaffee|-|m|drink,mass
tea|-|Tee|-|m|drink,mass
milk|-|Milch|-|f|drink,mass
water|-|Wasser|-|n|drink,mass
juice|-|Saft|-|m|drink,mass
lemonade|-|Limonade|-|f|drink,mass
# things
book|books|Buch|Bücher|n|thing,readable,writable,gift
newspaper|newspapers|Zeitung|Zeitungen|f|thing,readable
letter|letters|Brief|Briefe|m|thing,readable,writable,sendable,openable
magazine|magazines|Zeitschrift|Zeitschriften|f|thing,readable
story|stories|Geschichte|Geschichten|f|readable,writable
poem|poems|Gedicht|Gedichte|n|readable,writable
postcard|postcards|Postkarte|Postkarten|f|thing,readable,writable,sendable
map|maps|Landkarte|Landkarten|f|thing,readable
report|reports|Bericht|Berichte|m|thing,readable,writable
bag|bags|Tasche|Taschen|f|thing,container,openable
key|keys|Schlüssel|Schlüssel|m|thing
lamp|lamps|Lampe|Lampen|f|thing,machine
cup|cups|Tasse|Tassen|f|thing,dish
glass|glasses|Glas|Gläser|n|thing,dish
plate|plates|Teller|Teller|m|thing,dish
knife|knives|Messer|Messer|n|thing
spoon|spoons|Löffel|Löffel|m|thing,dish
box|boxes|Kiste|Kisten|f|thing,container,openable
picture|pictures|Bild|Bilder|n|thing,gift
clock|clocks|Uhr|Uhren|f|thing,machine
phone|phones|Telefon|Telefone|n|thing,machine
computer|computers|Computer|Computer|m|thing,machine
camera|cameras|Kamera|Kameras|f|thing,machine,gift
ball|balls|Ball|Bälle|m|thing,toy
hat|hats|Hut|Hüte|m|thing,clothing,gift
coat|coats|Mantel|Mäntel|m|thing,clothing
shoe|shoes|Schuh|Schuhe|m|thing,clothing
shirt|shirts|Hemd|Hemden|n|thing,clothing
dress|dresses|Kleid|Kleider|n|thing,clothing
jacket|jackets|Jacke|Jacken|f|thing,clothing
umbrella|umbrellas|Regenschirm|Regenschirme|m|thing
bottle|bottles|Flasche|Flaschen|f|thing,container,openable
ring|rings|Ring|Ringe|m|thing,gift
guitar|guitars|Gitarre|Gitarren|f|thing,gift
gift|gifts|Geschenk|Geschenke|n|thing,gift,sendable,openable
pen|pens|Stift|Stifte|m|thing
basket|baskets|Korb|Körbe|m|thing,container
mirror|mirrors|Spiegel|Spiegel|m|thing
blanket|blankets|Decke|Decken|f|thing
ticket|tickets|Fahrkarte|Fahrkarten|f|thing
package|packages|Paket|Pakete|n|thing,sendable,container,openable
flower|flowers|Blume|Blumen|f|plant,gift
tree|trees|Baum|Bäume|m|plant,place
car|cars|Auto|Autos|n|vehicle,place
bicycle|bicycles|Fahrrad|Fahrräder|n|vehicle
boat|boats|Boot|Boote|n|vehicle,buildable
table|tables|Tisch|Tische|m|furniture,buildable,place
chair|chairs|Stuhl|Stühle|m|furniture,buildable
bed|beds|Bett|Betten|n|furniture,buildable
door|doors|Tür|Türen|f|openable
window|windows|Fenster|Fenster|n|openable,place
house|houses|Haus|Häuser|n|building,buildable,place
bridge|bridges|Brücke|Brücken|f|building,buildable,place
# places
garden|gardens|Garten|Gärten|m|place
kitchen|kitchens|Küche|Küchen|f|place
park|parks|Park|Parks|m|place
library|libraries|Bibliothek|Bibliotheken|f|place
office|offices|Büro|Büros|n|place
school|schools|Schule|Schulen|f|place
city|cities|Stadt|Städte|f|place
village|villages|Dorf|Dörfer|n|place
forest|forests|Wald|Wälder|m|place
station|stations|Bahnhof|Bahnhöfe|m|place
market|markets|Markt|Märkte|m|place
lake|lakes|See|Seen|m|place
beach|beaches|Strand|Strände|m|place
river|rivers|Fluss|Flüsse|m|place
church|churches|Kirche|Kirchen|f|place,building
hospital|hospitals|Krankenhaus|Krankenhäuser|n|place,building
restaurant|restaurants|Restaurant|Restaurants|n|place
café|cafés|Café|Cafés|n|place
museum|museums|Museum|Museen|n|place,building
hotel|hotels|Hotel|Hotels|n|place,building
supermarket|supermarkets|Supermarkt|Supermärkte|m|place
street|streets|Straße|Straßen|f|place
field|fields|Feld|Felder|n|place
farm|farms|Bauernhof|Bauernhöfe|m|place
zoo|zoos|Zoo|Zoos|m|place
airport|airports|Flughafen|Flughäfen|m|place
cinema|cinemas|Kino|Kinos|n|place
bakery|bakeries|Bäckerei|Bäckereien|f|place
"""

# en | de | de stem | order | kinds   (kind "place" = may describe a place phrase)
_ADJECTIVES = """
old|alt|alt|3|person,animal,thing,vehicle,furniture,building,plant,place,clothing
young|jung|jung|3|person,animal
new|neu|neu|3|thing,vehicle,furniture,building,clothing,place
big|groß|groß|2|animal,thing,vehicle,furniture,building,plant,place,fruit
tall|groß|groß|2|person
small|klein|klein|2|person,animal,thing,vehicle,furniture,building,plant,place,fruit
long|lang|lang|2|readable,clothing
short|kurz|kurz|2|readable,clothing
heavy|schwer|schwer|1|container,furniture,machine
expensive|teuer|teur|1|thing,vehicle,furniture,clothing
cheap|billig|billig|1|thing,vehicle,furniture,clothing
beautiful|schön|schön|1|person,animal,thing,plant,place,building,clothing
ugly|hässlich|hässlich|1|animal,thing,building,clothing
friendly|freundlich|freundlich|1|person,animal
tired|müde|müd|1|person,animal
happy|glücklich|glücklich|1|person
hungry|hungrig|hungrig|1|person,animal
clever|klug|klug|1|person,animal
famous|berühmt|berühmt|1|person
sad|traurig|traurig|1|person
rich|reich|reich|1|person
poor|arm|arm|1|person
lazy|faul|faul|1|person,animal
brave|mutig|mutig|1|person
strange|seltsam|seltsam|1|person,animal,thing,readable
angry|wütend|wütend|1|person,animal
funny|lustig|lustig|1|person,readable
interesting|interessant|interessant|1|readable
boring|langweilig|langweilig|1|readable
shy|schüchtern|schüchtern|1|person,animal
wild|wild|wild|1|animal
fast|schnell|schnell|1|animal,vehicle
quiet|ruhig|ruhig|1|person,animal,place
clean|sauber|sauber|1|thing,vehicle,clothing,dish
dirty|schmutzig|schmutzig|1|thing,vehicle,clothing,dish
empty|leer|leer|1|container,dish
dark|dunkel|dunkl|5|clothing,vehicle,place
fresh|frisch|frisch|1|food,drink
sweet|süß|süß|1|fruit,drink,bakeable
sour|sauer|saur|1|fruit
hot|heiß|heiß|1|drink,dish_hot
cold|kalt|kalt|1|drink,dish_hot
ripe|reif|reif|1|fruit
red|rot|rot|5|thing,vehicle,clothing,fruit,plant
blue|blau|blau|5|thing,vehicle,clothing,plant
green|grün|grün|5|thing,vehicle,clothing,fruit
yellow|gelb|gelb|5|thing,vehicle,clothing,fruit,plant
black|schwarz|schwarz|5|animal,thing,vehicle,clothing
white|weiß|weiß|5|animal,thing,vehicle,clothing,plant
brown|braun|braun|5|animal,thing,clothing,furniture
grey|grau|grau|5|animal,thing,vehicle,clothing
"""

_THINGS = "thing,food,vehicle,furniture,plant"
# en 3sg | en base | en past | de 3sg | de plural | de participle | aux | frame | subjects | objects | recipients
_VERBS = f"""
sees|see|saw|sieht|sehen|gesehen|haben|acc|person,animal|person,animal,thing,vehicle,food,plant,building
buys|buy|bought|kauft|kaufen|gekauft|haben|acc|person|{_THINGS},drink
sells|sell|sold|verkauft|verkaufen|verkauft|haben|acc|person|{_THINGS}
reads|read|read|liest|lesen|gelesen|haben|acc|person|readable
writes|write|wrote|schreibt|schreiben|geschrieben|haben|acc|person|writable
finds|find|found|findet|finden|gefunden|haben|acc|person,animal|thing,animal,food
loses|lose|lost|verliert|verlieren|verloren|haben|acc|person|thing
forgets|forget|forgot|vergisst|vergessen|vergessen|haben|acc|person|thing
carries|carry|carried|trägt|tragen|getragen|haben|acc|person|thing,food,furniture
holds|hold|held|hält|halten|gehalten|haben|acc|person|thing,food
needs|need|needed|braucht|brauchen|gebraucht|haben|acc|person|thing,vehicle,food,furniture,drink
likes|like|liked|mag|mögen|gemocht|haben|acc|person,animal|person,animal,food,drink,readable,plant
loves|love|loved|liebt|lieben|geliebt|haben|acc|person|person,animal
paints|paint|painted|malt|malen|gemalt|haben|acc|person|person,animal,plant,building
draws|draw|drew|zeichnet|zeichnen|gezeichnet|haben|acc|person|person,animal,plant,building,vehicle
cleans|clean|cleaned|putzt|putzen|geputzt|haben|acc|person|furniture,dish,vehicle,openable
washes|wash|washed|wäscht|waschen|gewaschen|haben|acc|person|clothing,dish,vehicle,animal
repairs|repair|repaired|repariert|reparieren|repariert|haben|acc|person|vehicle,machine,furniture
opens|open|opened|öffnet|öffnen|geöffnet|haben|acc|person|openable
cooks|cook|cooked|kocht|kochen|gekocht|haben|acc|person|cookable
bakes|bake|baked|backt|backen|gebacken|haben|acc|person|bakeable
eats|eat|ate|isst|essen|gegessen|haben|acc|person,animal|food
drinks|drink|drank|trinkt|trinken|getrunken|haben|acc|person,animal|drink
orders|order|ordered|bestellt|bestellen|bestellt|haben|acc|person|food,drink
builds|build|built|baut|bauen|gebaut|haben|acc|person|buildable
hides|hide|hid|versteckt|verstecken|versteckt|haben|acc|person,animal|thing,food
watches|watch|watched|beobachtet|beobachten|beobachtet|haben|acc|person,animal|person,animal
meets|meet|met|trifft|treffen|getroffen|haben|acc|person|person
visits|visit|visited|besucht|besuchen|besucht|haben|acc|person|person
catches|catch|caught|fängt|fangen|gefangen|haben|acc|person,animal|prey,toy
feeds|feed|fed|füttert|füttern|gefüttert|haben|acc|person|animal
follows|follow|followed|folgt|folgen|gefolgt|sein|dat|person,animal|person,animal
helps|help|helped|hilft|helfen|geholfen|haben|dat|person|person
thanks|thank|thanked|dankt|danken|gedankt|haben|dat|person|person
answers|answer|answered|antwortet|antworten|geantwortet|haben|dat|person|person
gives|give|gave|gibt|geben|gegeben|haben|ditr|person|thing,food,gift,readable|person,animal
shows|show|showed|zeigt|zeigen|gezeigt|haben|ditr|person|thing,readable,animal,vehicle|person
sends|send|sent|schickt|schicken|geschickt|haben|ditr|person|sendable|person
brings|bring|brought|bringt|bringen|gebracht|haben|ditr|person|thing,food,drink,readable|person
sleeps|sleep|slept|schläft|schlafen|geschlafen|haben|intr|person,animal
works|work|worked|arbeitet|arbeiten|gearbeitet|haben|intr|person
waits|wait|waited|wartet|warten|gewartet|haben|intr|person,animal
laughs|laugh|laughed|lacht|lachen|gelacht|haben|intr|person
sings|sing|sang|singt|singen|gesungen|haben|intr|person
runs|run|ran|läuft|laufen|gelaufen|sein|intr|person,animal
swims|swim|swam|schwimmt|schwimmen|geschwommen|sein|intr|person,animal
dances|dance|danced|tanzt|tanzen|getanzt|haben|intr|person
plays|play|played|spielt|spielen|gespielt|haben|intr|person,animal
cries|cry|cried|weint|weinen|geweint|haben|intr|person
lives|live|lived|wohnt|wohnen|gewohnt|haben|live|person
travels|travel|travelled|reist|reisen|gereist|sein|travel|person
"""
# German forms with an animal subject (English "eats" is German "frisst" for animals)
_ANIMAL_FORMS = {"eats": ("frisst", "fressen", "gefressen")}

# en preposition | de preposition | noun | animals may be there (y/n)
_PLACES = """
in|in|garden|y
in|in|kitchen|y
in|in|park|y
in|in|library|n
in|in|office|n
in|in|school|n
in|in|city|y
in|in|village|y
in|in|forest|y
at|an|station|n
at|auf|market|n
at|an|lake|y
on|an|beach|y
by|an|river|y
in|in|church|n
in front of|vor|church|y
in|in|hospital|n
in|in|restaurant|n
in|in|café|n
in|in|museum|n
in|in|hotel|n
in|in|supermarket|n
on|auf|street|y
on|auf|bridge|y
under|unter|bridge|y
on|auf|field|y
on|auf|farm|y
at|in|zoo|y
at|an|airport|n
at|in|cinema|n
at|in|bakery|n
in|in|house|y
behind|hinter|house|y
in front of|vor|house|y
next to|neben|house|y
under|unter|table|y
at|an|table|n
next to|neben|table|y
under|unter|tree|y
behind|hinter|tree|y
in|in|car|y
next to|neben|car|y
at|an|window|y
"""

# en | de | tenses (p=present, s=past, f=future) | kind | frontable (y/n)
_ADVERBS = """
every morning|jeden Morgen|p|time|y
every evening|jeden Abend|p|time|y
every day|jeden Tag|p|time|y
on Mondays|montags|p|time|y
on Fridays|freitags|p|time|y
on Sundays|sonntags|p|time|y
in the morning|morgens|p|time|y
in the evening|abends|p|time|y
at night|nachts|p|time|y
in the summer|im Sommer|p|time|y
in the winter|im Winter|p|time|y
today|heute|p|time|y
after lunch|nach dem Mittagessen|ps|time|y
often|oft|ps|freq|n
always|immer|ps|freq|n
sometimes|manchmal|ps|freq|y
rarely|selten|ps|freq|n
usually|normalerweise|p|freq|y
yesterday|gestern|s|time|y
yesterday evening|gestern Abend|s|time|y
last week|letzte Woche|s|time|y
last year|letztes Jahr|s|time|y
last summer|letzten Sommer|s|time|y
this morning|heute Morgen|s|time|y
two days ago|vor zwei Tagen|s|time|y
three weeks ago|vor drei Wochen|s|time|y
on Monday|am Montag|sf|time|y
on Saturday|am Samstag|sf|time|y
tomorrow|morgen|f|time|y
tomorrow evening|morgen Abend|f|time|y
next week|nächste Woche|f|time|y
next year|nächstes Jahr|f|time|y
next summer|nächsten Sommer|f|time|y
on Friday|am Freitag|f|time|y
in two days|in zwei Tagen|f|time|y
soon|bald|f|time|y
"""

# English | German | gender (for relative pronouns)
_NAMES = """
Maria|f
Anna|f
Laura|f
Julia|f
Sarah|f
Lisa|f
Sophie|f
Emma|f
Lena|f
Clara|f
Nina|f
Eva|f
Hannah|f
Mia|f
Emily|f
Sandra|f
Greta|f
Rosa|f
Linda|f
Monika|f
Carla|f
Helen|f
Olivia|f
Alice|f
Thomas|m
Peter|m
Paul|m
David|m
Daniel|m
Michael|m
Felix|m
Martin|m
Simon|m
Jonas|m
Tom|m
Ben|m
Oliver|m
Robert|m
Lucas|m
Leon|m
Frank|m
Karl|m
Erik|m
Oskar|m
Hugo|m
Otto|m
Victor|m
Samuel|m
"""

# English | German
_CITIES = """
Berlin|Berlin
Hamburg|Hamburg
Munich|München
Vienna|Wien
Cologne|Köln
Zurich|Zürich
Geneva|Genf
Rome|Rom
Milan|Mailand
Venice|Venedig
Naples|Neapel
Prague|Prag
Warsaw|Warschau
Lisbon|Lissabon
Brussels|Brüssel
Copenhagen|Kopenhagen
Athens|Athen
Moscow|Moskau
London|London
Paris|Paris
Madrid|Madrid
Oslo|Oslo
Dublin|Dublin
Stockholm|Stockholm
Amsterdam|Amsterdam
Helsinki|Helsinki
Budapest|Budapest
Dresden|Dresden
Leipzig|Leipzig
Bremen|Bremen
Boston|Boston
Chicago|Chicago
Toronto|Toronto
Sydney|Sydney
Tokyo|Tokio
"""

NOUNS: dict[str, Noun] = {}
for _r in _rows(_NOUNS):
    NOUNS[_r[0]] = Noun(_r[0], _r[1], _r[2], _r[3], _r[4], _kinds(_r[5]), _r[6] if len(_r) > 6 else "")

ADJECTIVES: dict[str, Adjective] = {r[0]: Adjective(r[0], r[1], r[2], int(r[3]), _kinds(r[4]))
                                    for r in _rows(_ADJECTIVES)}

VERBS: dict[str, Verb] = {}
for _r in _rows(_VERBS):
    VERBS[_r[0]] = Verb(_r[0], _r[1], _r[2], _r[3], _r[4], _r[5], _r[6], _r[7], subjects=_kinds(_r[8]),
                        objects=_kinds(_r[9]) if len(_r) > 9 else frozenset(),
                        recipients=_kinds(_r[10]) if len(_r) > 10 else frozenset(),
                        de_animal=_ANIMAL_FORMS.get(_r[0]))

PLACES: tuple[Place, ...] = tuple(Place(r[0], r[1], NOUNS[r[2]], r[3] == "y") for r in _rows(_PLACES))

_TENSES = {"p": "present", "s": "past", "f": "future"}
ADVERBS: tuple[Adverb, ...] = tuple(Adverb(r[0], r[1], frozenset(_TENSES[c] for c in r[2]), r[3], r[4] == "y")
                                    for r in _rows(_ADVERBS))

NAMES: dict[str, str] = {r[0]: r[1] for r in _rows(_NAMES)}  # name -> gender
CITIES: dict[str, str] = {r[0]: r[1] for r in _rows(_CITIES)}  # English -> German

NUMBERS_EN = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
              "twelve")
NUMBERS_DE = ("null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun", "zehn", "elf",
              "zwölf")

_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_TEENS = ("ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
          "nineteen")


def number_words(n: int) -> str:
    """English words for 0 <= n < 100 (``34`` -> ``thirty-four``), as a speaker reads them."""
    if not 0 <= n < 100:
        raise ValueError(f"number_words covers 0-99, got {n}")
    if n < 10:
        return NUMBERS_EN[n]
    if n < 20:
        return _TEENS[n - 10]
    tens, ones = divmod(n, 10)
    return _TENS[tens] + (f"-{NUMBERS_EN[ones]}" if ones else "")


def english_vocabulary() -> set[str]:
    """Every English word form of the lexicon (lower-cased), for reporting its size."""
    words: set[str] = set()
    for noun in NOUNS.values():
        words.update((noun.en + " " + noun.en_plural).lower().replace("-", " ").split())
    for adjective in ADJECTIVES.values():
        words.add(adjective.en)
    for verb in VERBS.values():
        words.update((verb.en_3sg, verb.en_base, verb.en_past))
    for adverb in ADVERBS:
        words.update(adverb.en.lower().split())
    words.update(n.lower() for n in NAMES)
    words.update(c.lower() for c in CITIES)
    return words
