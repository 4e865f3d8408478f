"""Spoken question answering passages in the style of LibriSQA Part I: a short spoken passage, a text
question about one fact in it, and an open-format full-sentence answer.

A passage states 2-4 sentences of facts about one or two people (age, home and birth town, job and
workplace, pets, purchases, siblings, weekly activities, travel plans, cars, favourites, languages,
routines) drawn from lexicons. Every fact yields questions whose answer is in the passage and cannot be
guessed from the question: the values are drawn independently of the question wording, and a second
person with the same kinds of facts (harder levels) makes the model find the right one. Later sentences
about the same person say *she*/*he* when that is unambiguous.

Each question has one reference, a full sentence as in LibriSQA (``"Where does Maria work?"`` ->
``"Maria works at the hospital in Lisbon."``), worded in one of a few ways drawn per question (``"Maria's
workplace is the hospital in Lisbon."``), so that answers vary across examples and a sampled group has
wordings for BLEU to rank. The short form (``"At the hospital in Lisbon."``) is kept for analysis only
(:attr:`QA.short`), never as a reference: BLEU's brevity penalty takes the closest reference length, so a
short second reference pays one-word answers.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from speechgrpo.data.synthetic.lexicon import CITIES, NAMES, NOUNS, number_words

RELATIONS = ("neighbour", "friend", "colleague", "cousin", "flatmate")
JOBS: dict[str, tuple[str, ...]] = {
    "nurse": ("hospital", "clinic"), "doctor": ("hospital", "clinic"), "teacher": ("school", "language school"),
    "librarian": ("library",), "baker": ("bakery",), "cook": ("restaurant", "hotel"),
    "waiter": ("restaurant", "café", "hotel"), "pilot": ("airport",), "mechanic": ("garage",),
    "cashier": ("supermarket",), "pharmacist": ("pharmacy",), "engineer": ("factory", "airport"),
    "accountant": ("bank",), "clerk": ("post office", "bank", "town hall"), "tour guide": ("museum",),
    "zookeeper": ("zoo",), "firefighter": ("fire station",), "scientist": ("laboratory", "university"),
    "professor": ("university",), "gardener": ("park", "botanical garden"), "receptionist": ("hotel",),
    "lawyer": ("law firm",), "hairdresser": ("hair salon",), "dentist": ("dental clinic",),
    "journalist": ("newspaper",), "architect": ("design studio",), "bus driver": ("bus station",),
}
COLOURS = ("red", "blue", "green", "yellow", "black", "white", "brown", "grey", "orange", "purple", "pink",
           "silver")
PETS = ("dog", "cat", "rabbit", "parrot", "hamster", "horse", "turtle", "goldfish", "guinea pig", "canary")
PET_NAMES = ("Rex", "Luna", "Bella", "Charlie", "Coco", "Milo", "Daisy", "Ruby", "Pepper", "Biscuit", "Ginger",
             "Shadow", "Lucky", "Teddy", "Whiskers", "Bruno", "Nala", "Rocky", "Simba", "Poppy", "Mango", "Pixel",
             "Olive", "Bingo", "Pip", "Fluffy", "Sunny", "Cookie", "Pumpkin", "Smokey")
PURCHASES = ("umbrella", "lamp", "book", "apple", "lemon", "cup", "shirt", "chair", "pen", "plate", "basket",
             "bottle", "hat", "coat", "shoe", "clock", "blanket", "mirror", "ticket", "flower", "pear", "orange",
             "tomato", "potato", "egg", "cake", "newspaper", "postcard", "candle", "towel", "notebook", "glass")
_EXTRA_PLURALS = {"candle": "candles", "towel": "towels", "notebook": "notebooks"}
PURCHASE_ADJECTIVES = ("new", "old", "cheap", "expensive", "small", "big", "red", "blue", "green", "yellow",
                       "white", "black")
SHOPS = ("market", "supermarket", "bakery", "bookshop", "flea market", "department store", "corner shop",
         "garden centre")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
ACTIVITIES = (  # (3rd person singular, base form)
    ("plays tennis", "play tennis"), ("plays chess", "play chess"), ("plays football", "play football"),
    ("plays cards", "play cards"), ("plays the piano", "play the piano"), ("goes swimming", "go swimming"),
    ("goes running", "go running"), ("goes fishing", "go fishing"), ("goes dancing", "go dancing"),
    ("goes hiking", "go hiking"), ("goes cycling", "go cycling"), ("bakes bread", "bake bread"),
    ("cooks dinner", "cook dinner"), ("visits the museum", "visit the museum"),
    ("practises yoga", "practise yoga"), ("sings in a choir", "sing in a choir"),
)
TRANSPORT = ("train", "bus", "car", "plane", "boat", "ferry", "bike")
FAVOURITES: dict[str, tuple[str, ...]] = {
    "food": ("pasta", "soup", "pizza", "rice", "fish", "chocolate cake", "salad", "pancakes", "curry", "dumplings",
             "apple pie", "noodles"),
    "colour": COLOURS,
    "sport": ("football", "tennis", "swimming", "basketball", "skiing", "cycling", "volleyball", "golf", "rowing",
              "hockey"),
    "season": ("spring", "summer", "autumn", "winter"),
    "fruit": ("apples", "pears", "bananas", "oranges", "cherries", "strawberries", "grapes", "plums", "peaches"),
    "animal": ("the fox", "the owl", "the elephant", "the dolphin", "the horse", "the tiger", "the penguin",
               "the bear", "the giraffe"),
}
LANGUAGES = ("English", "German", "French", "Spanish", "Italian", "Portuguese", "Dutch", "Polish", "Swedish",
             "Greek", "Japanese", "Russian", "Chinese", "Turkish", "Arabic", "Danish")
WAKE_TIMES = ("five o'clock", "half past five", "six o'clock", "half past six", "seven o'clock", "half past seven",
              "eight o'clock", "half past eight", "nine o'clock", "a quarter past six", "a quarter to seven")
FACT_KINDS = ("age", "home", "work", "pet", "purchase", "siblings", "weekly", "travel", "car", "favourite",
              "wake", "languages")


@dataclass(frozen=True)
class QA:
    """A question, its full-sentence answer (the reference), its short form (for analysis), the fact kind,
    and ``value``: the words of the answer that only the passage gives (for checks)."""

    question: str
    answer: str
    short: str
    fact: str
    value: str


@dataclass(frozen=True)
class Passage:
    text: str
    sentences: tuple[str, ...]
    qas: tuple[QA, ...]
    people: tuple[str, ...]


@dataclass
class _Person:
    name: str
    gender: str
    kinds: set[str] = field(default_factory=set)
    days: set[str] = field(default_factory=set)
    objects: set[str] = field(default_factory=set)

    @property
    def pronoun(self) -> str:
        return "she" if self.gender == "f" else "he"

    @property
    def possessive(self) -> str:
        return "her" if self.gender == "f" else "his"


@dataclass(frozen=True)
class _Fact:
    """Sentence templates over {S} (subject), {P} (possessive), {s}/{p} (pronoun/possessive within the
    sentence), and the questions they answer; ``who`` = (question, answer, distinguishing value)."""

    kind: str
    templates: tuple[str, ...]
    qas: tuple[QA, ...]
    who: tuple[str, str, str] | None = None


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _a(word: str) -> str:
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def _plural(noun: str) -> str:
    return _EXTRA_PLURALS.get(noun) or NOUNS[noun].en_plural


def _say(rng: random.Random, *wordings: str) -> str:
    """One of several wordings of the same answer."""
    return rng.choice(wordings)


def _count(n: int, singular: str, plural: str) -> str:
    return f"no {plural}" if n == 0 else f"one {singular}" if n == 1 else f"{number_words(n)} {plural}"


def _age(rng: random.Random, p: _Person, ctx: dict[str, set[str]]) -> _Fact:
    age = number_words(rng.randint(18, 89))
    n = p.name
    return _Fact("age", ("{S} is " + age + " years old.", "{S} turned " + age + " this year."),
                 (QA(f"How old is {n}?", _say(rng, f"{n} is {age} years old.", f"{n} is {age}."),
                     f"{_cap(age)} years old.", "age", age),))


def _home(rng: random.Random, p: _Person, ctx: dict[str, set[str]]) -> _Fact:
    city, born = rng.sample(sorted(set(CITIES) - ctx["cities"]), 2)
    ctx["cities"].add(city)
    n = p.name
    lives = QA(rng.choice([f"Where does {n} live?", f"In which city does {n} live?"]),
               _say(rng, f"{n} lives in {city}.", f"{n}'s home is in {city}."),
               f"In {city}.", "home", city)
    if rng.random() < 0.5:
        return _Fact("home", ("{S} lives in " + city + ".", "{S} lives in a small flat in " + city + "."), (lives,),
                     who=(f"Who lives in {city}?", f"{{N}} lives in {city}.", city))
    born_qa = QA(f"Where was {n} born?", _say(rng, f"{n} was born in {born}.", f"{n}'s birthplace is {born}."),
                 f"In {born}.", "birthplace", born)
    return _Fact("home", (f"{{S}} was born in {born}, but now {{s}} lives in {city}.",
                          f"{{S}} lives in {city}, but {{s}} was born in {born}."), (lives, born_qa))


def _work(rng: random.Random, p: _Person, ctx: dict[str, set[str]]) -> _Fact:
    job = rng.choice(sorted(set(JOBS) - ctx["jobs"]))
    ctx["jobs"].add(job)
    place = rng.choice(JOBS[job])
    city = rng.choice(sorted(CITIES)) if rng.random() < 0.4 else ""
    where = f"the {place}" + (f" in {city}" if city else "")
    n = p.name
    job_qa = QA(rng.choice([f"What does {n} do for a living?", f"What is {n}'s job?"]),
                _say(rng, f"{n} works as {_a(job)}.", f"{n} is {_a(job)}."),
                _cap(_a(job)) + ".", "job", job)
    place_qa = QA(f"Where does {n} work?", _say(rng, f"{n} works at {where}.", f"{n}'s workplace is {where}."),
                f"At {where}.", "workplace", place)
    who = (f"Who works at the {place}?", f"{{N}} works at the {place}.", place)
    style = rng.random()
    if style < 0.25:
        return _Fact("work", (f"{{S}} works as {_a(job)}.", f"{{S}} is {_a(job)}."), (job_qa,))
    if style < 0.45:
        return _Fact("work", (f"{{S}} works at {where}.",), (place_qa,), who)
    return _Fact("work", (f"{{S}} works as {_a(job)} at {where}.", f"{{S}} is {_a(job)} and works at {where}."),
                 (job_qa, place_qa), who)


def _pet(rng: random.Random, p: _Person, ctx: dict[str, set[str]]) -> _Fact:
    pet = rng.choice(sorted(set(PETS) - ctx["pets"]))
    ctx["pets"].add(pet)
    name = rng.choice(PET_NAMES)
    n = p.name
    qas = [QA(f"What is the name of {n}'s {pet}?",
              _say(rng, f"{n}'s {pet} is called {name}.", f"{n}'s {pet} is named {name}."),
              f"{name}.", "pet_name", name)]
    who = (f"Who has {_a(pet)}?", f"{{N}} has {_a(pet)}.", pet)
    if rng.random() < 0.6:
        colour = rng.choice(COLOURS[:8])
        qas += [QA(f"What colour is {n}'s {pet}?", f"{n}'s {pet} is {colour}.", f"{_cap(colour)}.", "pet_colour",
                   colour),
                QA(f"What kind of pet does {n} have?", f"{n} has {_a(colour + ' ' + pet)}.", _cap(_a(pet)) + ".",
                   "pet_kind", pet)]
        templates = (f"{{S}} has {_a(colour + ' ' + pet)} called {name}.",
                     f"{{S}} has {_a(colour + ' ' + pet)} named {name}.")
    else:
        qas.append(QA(f"What kind of pet does {n} have?", f"{n} has {_a(pet)}.", _cap(_a(pet)) + ".", "pet_kind",
                      pet))
        templates = (f"{{S}} has {_a(pet)} called {name}.", f"{{S}} has {_a(pet)} named {name}.")
    return _Fact("pet", templates, tuple(qas), who)


def _purchase(rng: random.Random, p: _Person, ctx: dict[str, set[str]]) -> _Fact:
    day = rng.choice(sorted(set(DAYS) - p.days))
    obj = rng.choice(sorted(set(PURCHASES) - p.objects))
    p.days.add(day)
    p.objects.add(obj)
    count = rng.choice([1, 2, 2, 3, 3, 4, 5, 6, 7, 8, 9, 10, 12])
    adjective = rng.choice(PURCHASE_ADJECTIVES) if rng.random() < 0.6 else ""
    shop = rng.choice(SHOPS)
    noun = obj if count == 1 else _plural(obj)
    described = " ".join(w for w in (adjective, noun) if w)
    what = _a(described) if count == 1 else f"{number_words(count)} {described}"
    n = p.name
    qas = [QA(f"What did {n} buy on {day}?", f"On {day}, {n} bought {what}.", f"{_cap(what)}.", "purchase", what),
           QA(f"Where did {n} buy the {noun}?", f"{n} bought the {noun} at the {shop}.", f"At the {shop}.",
              "shop", shop),
           QA(rng.choice([f"On which day did {n} buy the {noun}?", f"When did {n} buy the {noun}?"]),
              f"{n} bought the {noun} on {day}.", f"On {day}.", "purchase_day", day)]
    if count > 1:
        qas.append(QA(f"How many {noun} did {n} buy?", f"{n} bought {number_words(count)} {noun}.",
                      f"{_cap(number_words(count))}.", "purchase_count", number_words(count)))
    return _Fact("purchase", (f"On {day}, {{S}} bought {what} at the {shop}.",
                              f"{{S}} bought {what} at the {shop} on {day}.",
                              f"{{S}} went to the {shop} on {day} and bought {what}."), tuple(qas))


def _siblings(rng: random.Random, p: _Person, ctx: dict[str, set[str]]) -> _Fact:
    brothers, sisters = rng.randint(0, 4), rng.randint(0, 4)
    if brothers == sisters == 0:
        brothers = rng.randint(1, 4)
    b, s, n = _count(brothers, "brother", "brothers"), _count(sisters, "sister", "sisters"), p.name
    short = {0: "None.", 1: "One."}
    qas = (QA(f"How many brothers does {n} have?", f"{n} has {b}.", short.get(brothers, _cap(number_words(brothers))
                                                                             + "."), "brothers", b.split()[0]),
           QA(f"How many sisters does {n} have?", f"{n} has {s}.", short.get(sisters, _cap(number_words(sisters))
                                                                            + "."), "sisters", s.split()[0]))
    return _Fact("siblings", (f"{{S}} has {b} and {s}.",), qas)


def _weekly(rng: random.Random, p: _Person, ctx: dict[str, set[str]]) -> _Fact:
    day = rng.choice(sorted(set(DAYS) - p.days))
    p.days.add(day)
    third, base = rng.choice(ACTIVITIES)
    friend = rng.choice(sorted(set(NAMES) - ctx["names"]))
    ctx["names"].add(friend)
    n = p.name
    qas = (QA(f"What does {n} do every {day}?", f"Every {day}, {n} {third} with {friend}.",
              f"{_cap(third)} with {friend}.", "weekly_activity", third),
           QA(f"Who does {n} {base} with?", f"{n} {third} with {friend}.", f"With {friend}.", "weekly_partner",
              friend),
           QA(rng.choice([f"On which day does {n} {base}?", f"When does {n} {base}?"]), f"{n} {third} every {day}.",
              f"Every {day}.", "weekly_day", day))
    return _Fact("weekly", (f"Every {day}, {{S}} {third} with {friend}.", f"{{S}} {third} with {friend} every {day}."),
                 qas)


def _travel(rng: random.Random, p: _Person, ctx: dict[str, set[str]]) -> _Fact:
    city = rng.choice(sorted(set(CITIES) - ctx["cities"]))
    ctx["cities"].add(city)
    month, transport = rng.choice(MONTHS), rng.choice(TRANSPORT)
    n = p.name
    qas = (QA(f"Where will {n} travel in {month}?", f"In {month}, {n} will travel to {city}.", f"To {city}.",
              "travel_city", city),
           QA(f"How will {n} travel to {city}?", f"{n} will travel to {city} by {transport}.", f"By {transport}.",
              "travel_transport", transport),
           QA(f"When will {n} travel to {city}?", f"{n} will travel to {city} in {month}.", f"In {month}.",
              "travel_month", month))
    return _Fact("travel", (f"In {month}, {{S}} will travel to {city} by {transport}.",
                            f"{{S}} is going to travel to {city} by {transport} in {month}."), qas,
                 who=(f"Who will travel to {city}?", f"{{N}} will travel to {city}.", city))


def _car(rng: random.Random, p: _Person, ctx: dict[str, set[str]]) -> _Fact:
    colour = rng.choice(COLOURS)
    age = rng.choice(["an old", "a new", "a small", "a big"])
    n = p.name
    return _Fact("car", (f"{{S}} drives {age} {colour} car.", f"{{P}} car is {colour}."),
                 (QA(f"What colour is {n}'s car?",
                     _say(rng, f"{n}'s car is {colour}.", f"{n} drives {_a(colour)} car."),
                     f"{_cap(colour)}.", "car_colour",
                     colour),))


def _favourite(rng: random.Random, p: _Person, ctx: dict[str, set[str]]) -> _Fact:
    topic = rng.choice(sorted(FAVOURITES))
    value = rng.choice(FAVOURITES[topic])
    n = p.name
    return _Fact("favourite", (f"{{P}} favourite {topic} is {value}.",
                               f"{{S}} says that {{p}} favourite {topic} is {value}."),
                 (QA(f"What is {n}'s favourite {topic}?",
                     _say(rng, f"{n}'s favourite {topic} is {value}.", f"{n} likes {value} best."),
                     f"{_cap(value)}.", f"favourite_{topic}", value),))


def _wake(rng: random.Random, p: _Person, ctx: dict[str, set[str]]) -> _Fact:
    time = rng.choice(WAKE_TIMES)
    n = p.name
    return _Fact("wake", (f"{{S}} gets up at {time} every morning.", f"Every morning, {{S}} gets up at {time}."),
                 (QA(rng.choice([f"What time does {n} get up?", f"When does {n} get up in the morning?"]),
                     _say(rng, f"{n} gets up at {time}.", f"{n} wakes up at {time}."),
                     f"At {time}.", "wake_time", time),))


def _languages(rng: random.Random, p: _Person, ctx: dict[str, set[str]]) -> _Fact:
    first, second = rng.sample(LANGUAGES, 2)
    n = p.name
    return _Fact("languages", (f"{{S}} speaks {first} and {second}.",),
                 (QA(f"Which languages does {n} speak?", f"{n} speaks {first} and {second}.",
                     f"{first} and {second}.", "languages", f"{first} and {second}"),))


_MAKERS: dict[str, Callable[[random.Random, _Person, dict[str, set[str]]], _Fact]] = {
    "age": _age, "home": _home, "work": _work, "pet": _pet, "purchase": _purchase, "siblings": _siblings,
    "weekly": _weekly, "travel": _travel, "car": _car, "favourite": _favourite, "wake": _wake,
    "languages": _languages,
}


def _fill(template: str, subject: str, possessive: str, person: _Person) -> str:
    text = template.replace("{S}", subject).replace("{P}", possessive)
    text = text.replace("{s}", person.pronoun).replace("{p}", person.possessive)
    return _cap(text)


def _layout(rng: random.Random, difficulty: int) -> tuple[int, int]:
    """(number of sentences, number of people) for a difficulty level."""
    if difficulty == 1:
        return 2, 1
    if difficulty == 2:
        sentences = rng.choice([2, 3, 3, 4])
        return sentences, 2 if sentences >= 3 and rng.random() < 0.4 else 1
    if difficulty == 3:
        return rng.choice([3, 4, 4]), 2
    raise ValueError(f"difficulty must be 1, 2 or 3, got {difficulty}")


def sample_passage(rng: random.Random, difficulty: int = 2) -> Passage:
    """A passage with every question it answers (at least one per sentence)."""
    n_sentences, n_people = _layout(rng, difficulty)
    names = rng.sample(sorted(NAMES), n_people)
    people = [_Person(name, NAMES[name]) for name in names]
    ctx: dict[str, set[str]] = {"cities": set(), "jobs": set(), "pets": set(), "names": set(names)}
    owners = [0] * (n_sentences - n_sentences // 2) + [1] * (n_sentences // 2) if n_people == 2 else [0] * n_sentences
    facts: list[tuple[_Person, _Fact]] = []
    for owner in owners:
        person = people[owner]
        kinds = [k for k in FACT_KINDS if k not in person.kinds or k == "purchase"]
        if owner == 1 and rng.random() < 0.6:  # a distractor: the same kind of fact as the first person's
            shared = [k for k in sorted(people[0].kinds) if k in kinds]
            kinds = shared or kinds
        kind = rng.choice(kinds)
        person.kinds.add(kind)
        facts.append((person, _MAKERS[kind](rng, person, ctx)))
    sentences, previous = [], None
    genders = [p.gender for p in people]
    relation = rng.choice(RELATIONS)
    for index, (person, fact) in enumerate(facts):
        templates = fact.templates
        introduce = person is not people[0] and all(f[0] is not person for f in facts[:index])
        if introduce:
            templates = tuple(t for t in templates if t.startswith("{S}")) or templates
        template = rng.choice(templates)
        if introduce:
            first = people[0]
            owner_ref = f"{first.possessive}" if previous is first and genders.count(first.gender) == 1 \
                else f"{first.name}'s"
            subject = f"{owner_ref} {relation} {person.name}"
            sentence = _fill(template.replace("{P}", subject + "'s"), subject, subject + "'s", person)
        elif previous is person and genders.count(person.gender) == 1:
            sentence = _fill(template, person.pronoun, person.possessive, person)
        else:
            sentence = _fill(template, person.name, f"{person.name}'s", person)
        sentences.append(sentence)
        previous = person
    qas = [qa for _, fact in facts for qa in fact.qas]
    if n_people == 2:
        for person, fact in facts:
            if fact.who is None:
                continue
            question, answer, value = fact.who
            holders = {p.name for p, f in facts if f.who is not None and f.who[2] == value}
            if holders == {person.name}:
                qas.append(QA(question, answer.replace("{N}", person.name), f"{person.name}.", "who", person.name))
    return Passage(" ".join(sentences), tuple(sentences), tuple(qas), tuple(names))

