"""Built-in GSM8K-style math word problems (``task.kind: math``), generated locally and deterministic by seed.

Each problem comes from one of a dozen templates (shopping, sharing, saving, farms, trains, ...)
with random names, objects and numbers; it takes two or three steps of arithmetic and has a whole,
non-negative answer. Its demonstration is written as GSM8K writes solutions, reasoning then the
final answer::

    Tom has 3 boxes of 12 pencils, so he has 3 * 12 = 36 pencils.
    He gives away 7, so 36 - 7 = 29 pencils are left.
    #### 29

The answer is checked with math-verify (``task.match: math``): ``#### 29``, ``\\boxed{29}``,
``$29$`` and "the answer is 29" all count. Test, then validation, then training problems are drawn
without repeats, so the splits never overlap (as with the arithmetic task).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from redraft.config import TaskSection
from redraft.errors import ConfigError
from redraft.tasks.base import Example, Task

# The default prompt; the demonstration follows it after a space.
MATH_TEMPLATE = "Question: {question}\nAnswer:"

_PEOPLE = [
    ("Tom", "he", "his"), ("Mia", "she", "her"), ("Sam", "he", "his"), ("Ana", "she", "her"), ("Leo", "he", "his"),
    ("Zoe", "she", "her"), ("Ravi", "he", "his"), ("Lena", "she", "her"), ("Omar", "he", "his"), ("Ines", "she", "her"),
    ("Jack", "he", "his"), ("Nora", "she", "her"), ("Ken", "he", "his"), ("Maya", "she", "her"), ("Ali", "he", "his"),
    ("Sara", "she", "her"), ("Ben", "he", "his"), ("Lily", "she", "her"), ("Paul", "he", "his"), ("Emma", "she", "her"),
]  # fmt: skip
_SMALL_THINGS = ["pencils", "stickers", "marbles", "crayons", "beads", "cards", "buttons", "stamps"]
_GROCERIES = [("apple", "apples"), ("muffin", "muffins"), ("notebook", "notebooks"), ("pen", "pens"),
              ("orange", "oranges"), ("cupcake", "cupcakes"), ("toy car", "toy cars"), ("comic", "comics")]  # fmt: skip
_GIFTS = ["book", "game", "kite", "ball", "puzzle", "hat", "scarf", "lamp"]
_FRUIT = ["apples", "pears", "plums", "peaches", "lemons", "cherries"]

Problem = tuple[str, list[str], int]  # question, reasoning lines, answer


def _person(rng: random.Random, avoid: str | None = None) -> tuple[str, str, str]:
    while True:
        person = rng.choice(_PEOPLE)
        if person[0] != avoid:
            return person


def _boxes(rng: random.Random) -> Problem:
    name, he, _ = _person(rng)
    things = rng.choice(_SMALL_THINGS)
    boxes, per_box = rng.randint(2, 9), rng.randint(6, 24)
    total = boxes * per_box
    given = rng.randint(1, total - 1)
    question = (
        f"{name} has {boxes} boxes of {per_box} {things} and gives away {given} of them. "
        f"How many {things} does {name} have left?"
    )
    lines = [
        f"{name} has {boxes} * {per_box} = {total} {things}.",
        f"After giving away {given}, {he} has {total} - {given} = {total - given} {things} left.",
    ]
    return question, lines, total - given


def _change(rng: random.Random) -> Problem:
    name, he, _ = _person(rng)
    item, items = rng.choice(_GROCERIES)
    count, price = rng.randint(2, 9), rng.randint(2, 12)
    cost = count * price
    bill = next(b for b in (10, 20, 50, 100, 200) if b > cost)
    question = (
        f"{name} buys {count} {items} for ${price} each and pays with a ${bill} bill. "
        f"How much change, in dollars, does {he} get?"
    )
    lines = [f"The {items} cost {count} * {price} = ${cost}.", f"The change is {bill} - {cost} = ${bill - cost}."]
    return question, lines, bill - cost


def _saving(rng: random.Random) -> Problem:
    name, he, _ = _person(rng)
    weekly, weeks = rng.randint(3, 25), rng.randint(2, 12)
    saved = weekly * weeks
    spent = rng.randint(1, saved)
    gift = rng.choice(_GIFTS)
    question = (
        f"{name} saves ${weekly} every week for {weeks} weeks, then spends ${spent} on a {gift}. "
        f"How many dollars does {he} have left?"
    )
    lines = [
        f"{name} saves {weekly} * {weeks} = ${saved}.",
        f"After the {gift}, {he} has {saved} - {spent} = ${saved - spent} left.",
    ]
    return question, lines, saved - spent


def _sharing(rng: random.Random) -> Problem:
    name, _, _ = _person(rng)
    friends = rng.randint(2, 8)
    trays = rng.randint(2, 6)
    per_tray = friends * rng.randint(1, 6)
    total = trays * per_tray
    question = (
        f"{name} bakes {trays} trays of {per_tray} cookies and shares them equally among {friends} friends. "
        "How many cookies does each friend get?"
    )
    lines = [
        f"There are {trays} * {per_tray} = {total} cookies.",
        f"Each friend gets {total} / {friends} = {total // friends} cookies.",
    ]
    return question, lines, total // friends


def _reading(rng: random.Random) -> Problem:
    name, he, _ = _person(rng)
    monday = rng.randint(5, 40)
    factor = rng.choice([2, 3])
    read = monday + factor * monday
    book = read + rng.randint(1, 200)
    times = {2: "twice", 3: "three times"}[factor]
    question = (f"{name} reads {monday} pages on Monday and {times} as many pages on Tuesday. "
                f"The book has {book} pages. How many pages are left to read?")  # fmt: skip
    lines = [f"On Tuesday {he} reads {factor} * {monday} = {factor * monday} pages.",
             f"In total {he} has read {monday} + {factor * monday} = {read} pages.",
             f"So {book} - {read} = {book - read} pages are left."]  # fmt: skip
    return question, lines, book - read


def _farm(rng: random.Random) -> Problem:
    chickens, cows = rng.randint(2, 40), rng.randint(2, 30)
    question = f"A farmer has {chickens} chickens and {cows} cows. How many legs do the animals have in total?"
    lines = [f"The chickens have {chickens} * 2 = {2 * chickens} legs.", f"The cows have {cows} * 4 = {4 * cows} legs.",
             f"Together that is {2 * chickens} + {4 * cows} = {2 * chickens + 4 * cows} legs."]  # fmt: skip
    return question, lines, 2 * chickens + 4 * cows


def _school(rng: random.Random) -> Problem:
    rooms, students = rng.randint(3, 12), rng.randint(15, 32)
    total = rooms * students
    absent = rng.randint(1, rooms * 3)
    question = (
        f"A school has {rooms} classrooms with {students} students in each. {absent} students are absent today. "
        "How many students are at school?"
    )
    lines = [
        f"The school has {rooms} * {students} = {total} students.",
        f"Today {total} - {absent} = {total - absent} students are at school.",
    ]
    return question, lines, total - absent


def _train(rng: random.Random) -> Problem:
    speed, hours, extra = rng.randint(4, 12) * 10, rng.randint(2, 6), rng.randint(5, 95)
    question = (
        f"A train travels at {speed} km per hour for {hours} hours and then {extra} km more. "
        "How many km does it travel in total?"
    )
    lines = [
        f"In {hours} hours it travels {speed} * {hours} = {speed * hours} km.",
        f"In total it travels {speed * hours} + {extra} = {speed * hours + extra} km.",
    ]
    return question, lines, speed * hours + extra


def _picking(rng: random.Random) -> Problem:
    first, _, _ = _person(rng)
    second, _, _ = _person(rng, avoid=first)
    fruit = rng.choice(_FRUIT)
    picked, more = rng.randint(5, 60), rng.randint(1, 30)
    question = (
        f"{first} picks {picked} {fruit}. {second} picks {more} more {fruit} than {first}. "
        f"How many {fruit} do they pick together?"
    )
    lines = [
        f"{second} picks {picked} + {more} = {picked + more} {fruit}.",
        f"Together they pick {picked} + {picked + more} = {2 * picked + more} {fruit}.",
    ]
    return question, lines, 2 * picked + more


def _wages(rng: random.Random) -> Problem:
    name, he, _ = _person(rng)
    hours, rate, days = rng.randint(2, 8), rng.randint(8, 25), rng.randint(2, 6)
    daily = hours * rate
    question = (
        f"{name} works {hours} hours a day and earns ${rate} an hour. How many dollars does {he} earn in {days} days?"
    )
    lines = [
        f"Each day {he} earns {hours} * {rate} = ${daily}.",
        f"In {days} days {he} earns {daily} * {days} = ${daily * days}.",
    ]
    return question, lines, daily * days


def _sale(rng: random.Random) -> Problem:
    item = rng.choice(_GIFTS)
    percent = rng.choice([10, 20, 25, 50])
    price = rng.randint(2, 30) * (100 // percent)  # so the discount is whole
    off = price * percent // 100
    question = f"A {item} costs ${price}. It is on sale for {percent}% off. What is the sale price in dollars?"
    lines = [
        f"The discount is {price} * {percent} / 100 = ${off}.",
        f"The sale price is {price} - {off} = ${price - off}.",
    ]
    return question, lines, price - off


def _budget(rng: random.Random) -> Problem:
    name, he, _ = _person(rng)
    count, price, pen = rng.randint(2, 6), rng.randint(2, 9), rng.randint(1, 5)
    spent = count * price + pen
    money = spent + rng.randint(0, 40)
    question = (
        f"{name} has ${money}. {he.capitalize()} buys {count} notebooks for ${price} each and a pen for ${pen}. "
        f"How many dollars does {he} have left?"
    )
    lines = [f"The notebooks cost {count} * {price} = ${count * price}.",
             f"With the pen {he} spends {count * price} + {pen} = ${spent}.",
             f"{name} has {money} - {spent} = ${money - spent} left."]  # fmt: skip
    return question, lines, money - spent


TEMPLATES: tuple[Callable[[random.Random], Problem], ...] = (
    _boxes, _change, _saving, _sharing, _reading, _farm, _school, _train, _picking, _wages, _sale, _budget,
)  # fmt: skip


def solution_text(lines: list[str], answer: int) -> str:
    """A GSM8K-style solution: the reasoning lines, then ``#### <answer>``."""
    return " " + "\n".join(lines) + f"\n#### {answer}"


def word_problem(rng: random.Random) -> Example:
    question, lines, answer = rng.choice(TEMPLATES)(rng)
    assert answer >= 0, question  # every template keeps answers whole and non-negative
    return Example(
        question=question, answer=str(answer), completion=solution_text(lines, answer), fields={"value": answer}
    )


def word_problem_task(cfg: TaskSection, template: str = MATH_TEMPLATE, match: str = "math") -> Task:
    taken: set[str] = set()
    splits = {}
    for offset, (split, size) in enumerate((("test", cfg.test_size), ("val", cfg.val_size), ("train", cfg.train_size))):
        rng = random.Random(f"math-{cfg.seed}-{offset}")
        examples: list[Example] = []
        attempts = 0
        while len(examples) < size:
            attempts += 1
            if attempts > 50 * size + 1000:
                raise ConfigError(f"task: cannot draw {size} distinct {split} word problems; lower the split sizes")
            example = word_problem(rng)
            if example.question not in taken:
                taken.add(example.question)
                examples.append(example)
        splits[split] = examples
    return Task(name="math_word_problems", template=template, match=match, few_shot=cfg.few_shot, **splits)
