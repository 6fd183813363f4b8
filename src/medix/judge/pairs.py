"""Labelled (reference, candidate) pairs for `medix judge audit`, built from benchmark items without a model.

Every pair is labelled by construction and tagged with its *kind* (how it was built) and its *category* (which
form of that kind: "positive: hedged answer", "negative: side swapped", ...). The kinds:

- `options`: the correct MCQ option against its surface variants (letter, "B. text", case, article, ...) and
  against the distractors: short phrases, the form the judge was first calibrated on.
- `frames`: the correct option and a distractor inside the sentence frames answers really use (a statement,
  a diagnosis with its reason, a hedged answer, "The answer is ...").
- `negation`: a short reference asserted and negated in the same frame ("Findings consistent with X" /
  "No evidence of X").
- `yesno`: closed yes/no questions (PubMedQA, VQA-RAD, PathVQA, SLAKE) answered with an explanation, the
  same polarity (positive) or the other (negative), the explanation unchanged.
- `laterality`: a reference naming a side or a direction (left, upper, anterior, ...) written in a sentence,
  and the same with that word swapped.
- `location`: a reference naming an organ or a region, written in a sentence, and another item's region.
- `numbers`: a reference holding a number, the same number in a sentence (or spelled out), and the number
  changed.
- `synonyms`: a reference holding a term with a standard abbreviation or synonym (CT, MI, paracetamol, ...),
  with the term replaced by its synonym (positive) or by another term's synonym of the same group (negative).

Each kind gives balanced positives and negatives, at most one of each per item, so that k-fold calibration
can keep an item's pairs in one fold (`Pair.group`).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

from medix.errors import MedixError, where

KINDS = ("options", "frames", "negation", "yesno", "laterality", "location", "numbers", "synonyms")
SENTENCE_KINDS = KINDS[1:]
_ARTICLE = re.compile(r"^(the|a|an)\s+", re.IGNORECASE)


@dataclass(frozen=True)
class Pair:
    reference: str
    candidate: str
    label: bool  # True: the candidate means the reference
    question: str = ""
    source: str = "file"  # the category: which form of its kind ("positive: letter", "negative: side swapped")
    kind: str = "file"  # how the pair was built (KINDS), "file" for a user's pairs
    group: str = ""  # the item it was built from: pairs of one group stay in one calibration fold


def parse_kinds(value: str | None) -> tuple[str, ...]:
    """'all' (default), 'sentences' (every kind but options) or a comma list of KINDS, checked."""
    if not value or value.strip() == "all":
        return KINDS
    if value.strip() == "sentences":
        return SENTENCE_KINDS
    kinds = tuple(k.strip() for k in value.split(",") if k.strip())
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise MedixError(f"--kind {value!r}: unknown kind(s) {', '.join(unknown) or '(none)'}; choose from all, "
                         f"sentences, {', '.join(KINDS)}")
    return kinds


# --- the kinds -------------------------------------------------------------------------------------------

def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[1:2].islower() or len(text) == 1 else text


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def _sentence(text: str) -> str:
    return text.rstrip(" .") + "."


def _variants(letter: str, text: str) -> list[tuple[str, str]]:
    """(category, candidate) forms that must count as the correct option `text` (option `letter`)."""
    bare = _ARTICLE.sub("", text)
    out = [("letter", letter), ("letter+text", f"{letter}. {text}"), ("lower case", text.lower()),
           ("punctuation", f"{text}."), ("sentence", f"The answer is {_lower_first(text)}.")]
    if bare != text:
        out.append(("article", bare))
    elif text[:1].islower() or text[:1].isupper():  # a cased first letter: "the x" reads as English
        out.append(("article", f"the {_lower_first(text)}"))
    return [(s, c) for s, c in out if c.strip() and c != text]


def _mcq(item) -> tuple[str, str, dict[str, str]] | None:
    """(letter, text, distractors by letter) of an MCQ item, or None."""
    if not item.choices or len(item.choices) < 2:
        return None
    letter = next((k for k, v in item.choices.items() if v.strip() == item.reference.strip()), None)
    if letter is None:  # medix-protocol reference "B. text"
        letter = item.reference[:1] if item.reference[1:3] == ". " else None
    if letter not in item.choices or len(item.choices[letter].strip()) < 2:
        return None
    text = item.choices[letter].strip()
    others = {k: v.strip() for k, v in item.choices.items()
              if k != letter and v and v.strip() and v.strip().lower() != text.lower()}
    return (letter, text, others) if others else None


def _options(item, rng):
    found = _mcq(item)
    if not found:
        return [], []
    letter, text, others = found
    positives = [(f"positive: {s}", c) for s, c in _variants(letter, text)]
    negatives = [n for k, v in others.items()
                 for n in (("negative: distractor", v), ("negative: distractor letter+text", f"{k}. {v}"))]
    return positives, negatives


_FRAMES = (  # (category, frame): the forms free-form answers take
    ("statement", "{x} is the correct choice here."),
    ("diagnosis with reason", "{X}, because it best explains the findings described in the question."),
    ("hedged answer", "Most likely {x}, although other possibilities cannot be fully excluded."),
    ("'The answer is'", "The answer is {x}."),
)


def _frame(frame: str, text: str) -> str:
    text = text.rstrip(" .")
    return frame.format(x=_lower_first(text), X=_upper_first(text)) if "{X}" in frame else \
        _upper_first(frame.format(x=text if frame.startswith("{x}") else _lower_first(text)))


def _frames(item, rng):
    found = _mcq(item)
    if not found or len(found[1]) > 120:
        return [], []
    _, text, others = found
    category, frame = rng.choice(_FRAMES)
    wrong = rng.choice(sorted(others.values()))
    return ([(f"positive: {category}", _frame(frame, text))],
            [(f"negative: distractor in a {category.strip(chr(39))}" if not category.startswith("'")
              else f"negative: distractor after {category}", _frame(frame, wrong))])


_YES_NO = {"yes", "no"}


def _short_answer(item) -> str | None:
    """A short open answer (≤ 6 words, not yes/no) to negate or frame: a VQA answer or a short MCQ option."""
    found = _mcq(item)
    text = found[1] if found else item.reference.strip()
    text = text.rstrip(" .?")
    words = text.split()
    if not words or len(words) > 6 or text.lower() in _YES_NO | {"maybe"} or "\n" in text:
        return None
    if re.search(r"\b(not|no|none|never|without)\b", text, re.IGNORECASE):  # already negated: ambiguous
        return None
    if _NUMBER.fullmatch(text.split()[0]) and len(words) <= 2:  # "80", "5 mg": a value, not a finding
        return None
    return text


_NEGATIONS = (  # (positive frame, negative frame): the same sentence asserted and denied
    ("Findings consistent with {x}.", "No evidence of {x}."),
    ("It is {x}.", "It is not {x}."),
    ("{X} is present.", "{X} is absent."),
    ("The answer is {x}.", "The answer is not {x}."),
    ("{X} is the most likely answer.", "{X} is ruled out."),
)


def _negation(item, rng):
    text = _short_answer(item)
    if text is None:
        return [], []
    positive, negative = rng.choice(_NEGATIONS)
    fill = {"x": _lower_first(text), "X": _upper_first(text)}
    return [("positive: asserted", positive.format(**fill))], [("negative: negated", negative.format(**fill))]


_AUX = {"is": ("it is", "it is not"), "are": ("they are", "they are not"), "was": ("it was", "it was not"),
        "were": ("they were", "they were not"), "does": ("it does", "it does not"), "do": ("they do", "they do not"),
        "did": ("it did", "it did not"), "can": ("it can", "it cannot"), "could": ("it could", "it could not"),
        "has": ("it has", "it has not"), "have": ("they have", "they have not"),
        "should": ("it should", "it should not"),
        "will": ("it will", "it will not"), "would": ("it would", "it would not")}


def _polar_answers(question: str, explanation: str) -> tuple[str, str] | None:
    """("Yes, …", "No, …") answers to a closed question, each with the same explanation."""
    q = question.strip().rstrip("?").strip()
    words = q.split()
    if len(words) < 2:
        return None
    head = words[0].lower()
    if head in ("is", "are") and words[1].lower() == "there" and len(words) > 2:  # "is there X" → "there is X"
        thing = " ".join(words[2:])  # "no a pneumothorax" is not English: the article goes
        return (f"Yes, there {head} {thing}{explanation}",
                f"No, there {head} no {_ARTICLE.sub('', thing)}{explanation}")
    if head not in _AUX:
        return None
    yes, no = _AUX[head]
    return f"Yes, {yes}{explanation}", f"No, {no}{explanation}"


def _yesno(item, rng):
    reference = item.reference.strip()
    polarity = reference.split(None, 1)[0].rstrip(".,").lower() if reference else ""
    if polarity not in _YES_NO:
        return [], []
    question = item.question
    if "Question:" in question:  # PubMedQA: the question after its abstract
        question = question.rsplit("Question:", 1)[1].split("\n")[0]
    conclusion = reference.split(None, 1)[1].strip() if len(reference.split(None, 1)) > 1 else ""
    if conclusion:  # PubMedQA: the reference's own conclusion, first sentence
        explanation = "; " + _lower_first(re.split(r"(?<=\.)\s", conclusion, maxsplit=1)[0].rstrip("."))
    else:
        explanation = rng.choice(("; this is visible on the image", ", as the image shows",
                                  ", judging from the appearance in the image"))
    answers = _polar_answers(question, explanation + ".")
    if answers is None:
        return [], []
    agree, disagree = answers if polarity == "yes" else answers[::-1]
    return [("positive: same polarity, explained", agree)], [("negative: other polarity, explained", disagree)]


_SIDES = (("left", "right"), ("upper", "lower"), ("anterior", "posterior"), ("superior", "inferior"),
          ("medial", "lateral"), ("proximal", "distal"), ("top", "bottom"))
_SWAP = {a: b for pair in _SIDES for a, b in (pair, pair[::-1])}
_SIDE_WORD = re.compile(r"\b(" + "|".join(_SWAP) + r")\b", re.IGNORECASE)
_PLACE_FRAMES = ("It is located in the {x}.", "The finding is in the {x}.", "In the {x}, as seen on the image.")


def _swap_side(text: str) -> str:
    def one(match: re.Match) -> str:
        word = _SWAP[match.group(1).lower()]
        return _upper_first(word) if match.group(1)[0].isupper() else word
    return _SIDE_WORD.sub(one, text, count=1)


def _laterality(item, rng):
    text = _short_answer(item)
    if text is None or not _SIDE_WORD.search(text):
        return [], []
    # An MCQ option naming a side is seldom a place ("Posterior pituitary tumors"): the neutral frame for it.
    frame = "The answer is {x}." if item.choices else rng.choice(_PLACE_FRAMES)
    x = _ARTICLE.sub("", text).lower()
    return ([("positive: same side, in a sentence", frame.format(x=x))],
            [("negative: side swapped", frame.format(x=_swap_side(x)))])


_LOCATION_TYPES = {"Position", "Organ", "POS", "ORGAN"}


def _location_pool(items) -> list[str]:
    pool = set()
    for item in items:
        meta = item.meta or {}
        if meta.get("content_type") in _LOCATION_TYPES or meta.get("question_type") in _LOCATION_TYPES:
            text = _short_answer(item)
            if text and not _SIDE_WORD.search(text):
                pool.add(_ARTICLE.sub("", text).lower())
    return sorted(pool)


def _location(item, rng, pool: list[str]):
    meta = item.meta or {}
    if not (meta.get("content_type") in _LOCATION_TYPES or meta.get("question_type") in _LOCATION_TYPES):
        return [], []
    text = _short_answer(item)
    if text is None or _SIDE_WORD.search(text):
        return [], []
    x = _ARTICLE.sub("", text).lower()
    others = [p for p in pool if p != x and p not in x and x not in p]
    if not others:
        return [], []
    frame = rng.choice(_PLACE_FRAMES)
    return ([("positive: same place, in a sentence", frame.format(x=x))],
            [("negative: another place", frame.format(x=rng.choice(others)))])


_NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(?![\w])")  # not an ordinal ("2nd") or part of a word
_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def _changed(number: str, rng) -> str:
    if "." in number:
        value = float(number)
        return f"{value * rng.choice((2, 0.5, 3)):.{len(number.split('.')[1])}f}"
    value = int(number)
    return str(value + rng.choice((1, 2, 3))) if value < 10 else str(value * rng.choice((2, 3)))


def _numbers(item, rng):
    found = _mcq(item)
    text = (found[1] if found else item.reference.strip()).rstrip(" .")
    if len(text.split()) > 8 or "\n" in text:
        return [], []
    numbers = _NUMBER.findall(text)
    if not numbers:
        return [], []
    number = numbers[0]
    if text == number and number.isdigit() and int(number) < len(_WORDS):  # a count: "2" → "There are two."
        changed = int(_changed(number, rng))
        spelled = _WORDS[changed] if changed < len(_WORDS) else str(changed)
        return ([("positive: the number spelled out", f"There are {_WORDS[int(number)]}.")],
                [("negative: number changed", f"There are {spelled}.")])
    frame = rng.choice(("The answer is {x}.", "{X}, based on the information given.", "It is {x}."))
    changed = text.replace(number, _changed(number, rng), 1)
    fill = lambda t: frame.format(x=_lower_first(t), X=_upper_first(t))  # noqa: E731
    return [("positive: same number, in a sentence", fill(text))], [("negative: number changed", fill(changed))]


# Standard abbreviations and synonyms, by group: a negative swaps in a synonym of another term of the group.
SYNONYMS: dict[str, dict[str, str]] = {
    "imaging": {"CT": "computed tomography", "MRI": "magnetic resonance imaging", "X-Ray": "plain radiograph",
                "ultrasound": "sonography", "PET": "positron emission tomography"},
    "conditions": {"myocardial infarction": "heart attack", "cerebrovascular accident": "stroke",
                   "deep vein thrombosis": "DVT", "pulmonary embolism": "PE",
                   "chronic obstructive pulmonary disease": "COPD", "congestive heart failure": "CHF",
                   "gastroesophageal reflux disease": "GERD", "urinary tract infection": "UTI",
                   "tuberculosis": "TB", "hypertension": "high blood pressure", "atrial fibrillation": "AF",
                   "acute respiratory distress syndrome": "ARDS", "diabetes mellitus": "diabetes",
                   "systemic lupus erythematosus": "lupus", "multiple sclerosis": "MS",
                   "rheumatoid arthritis": "RA", "hypothyroidism": "underactive thyroid",
                   "pneumothorax": "collapsed lung", "cardiomegaly": "enlarged heart",
                   "hepatomegaly": "enlarged liver", "splenomegaly": "enlarged spleen"},
    "drugs": {"acetaminophen": "paracetamol", "epinephrine": "adrenaline", "norepinephrine": "noradrenaline",
              "vitamin K": "phytonadione", "vitamin B12": "cobalamin", "vitamin C": "ascorbic acid",
              "vitamin B1": "thiamine", "aspirin": "acetylsalicylic acid", "furosemide": "frusemide",
              "salbutamol": "albuterol", "glyceryl trinitrate": "nitroglycerin"},
    "organisms": {"Staphylococcus aureus": "S. aureus", "Escherichia coli": "E. coli",
                  "Streptococcus pneumoniae": "pneumococcus", "Neisseria meningitidis": "meningococcus",
                  "Helicobacter pylori": "H. pylori", "Mycobacterium tuberculosis": "the tubercle bacillus"},
    "anatomy": {"chest": "thorax", "kidney": "renal organ", "abdomen": "abdominal cavity",
                "cerebrum": "brain", "liver": "hepatic organ"},
}
_TERMS = [(group, term, synonym) for group, table in SYNONYMS.items() for term, synonym in table.items()]


def _synonyms(item, rng):
    found = _mcq(item)
    text = (found[1] if found else item.reference.strip()).rstrip(" .")
    if len(text.split()) > 10 or "\n" in text:
        return [], []
    for group, term, synonym in _TERMS:
        match = re.search(rf"(?<![\w-]){re.escape(term)}(?![\w-])", text, re.IGNORECASE)
        if match is None:
            continue
        others = [s for g, t, s in _TERMS if g == group and t != term]
        swapped = rng.choice(others)
        frame = rng.choice(("{x}", "It is {x}.", "The answer is {x}."))
        fill = lambda t: _upper_first(frame.format(x=t)) if frame != "{x}" else t  # noqa: E731
        return ([("positive: abbreviation or synonym", fill(text[:match.start()] + synonym + text[match.end():]))],
                [("negative: another term's synonym", fill(text[:match.start()] + swapped + text[match.end():]))])
    return [], []


_BUILDERS = {"options": _options, "frames": _frames, "negation": _negation, "yesno": _yesno,
             "laterality": _laterality, "numbers": _numbers, "synonyms": _synonyms}


def _audit_question(item) -> str:
    """The question as the judge sees it in the pairs: PubMedQA's abstract left out (it is the question's
    context, hundreds of tokens, and the pair's label does not depend on it)."""
    if item.task == "pubmedqa" and "Question:" in item.question:
        return item.question.rsplit("Question:", 1)[1].strip()
    return item.question


def pairs_from_items(items, n: int | None = None, seed: int = 0, kinds: tuple[str, ...] = ("options",)) -> list[Pair]:
    """Balanced positive / negative pairs of each kind from benchmark items (EvalItems); `n` caps the total,
    shared evenly among the kinds that found items (a kind with fewer pairs leaves its share unused)."""
    rng = random.Random(seed)
    items = [i for i in items if i.reference and i.reference.strip()]
    pool = _location_pool(items)
    per_kind = {}
    for kind in kinds:
        positives, negatives = [], []
        for item in items:
            made = _location(item, rng, pool) if kind == "location" else _BUILDERS[kind](item, rng)
            group = f"{item.task}:{item.id}"
            question = _audit_question(item)
            reference = _mcq(item)[1] if kind in ("options", "frames") and _mcq(item) else item.reference
            if kind == "options":  # every form of the item, as before: many pairs per item
                positives += [Pair(reference, c, True, question, s, kind, group) for s, c in made[0]]
                negatives += [Pair(reference, c, False, question, s, kind, group) for s, c in made[1]]
            elif made[0] and made[1]:
                positives.append(Pair(reference, made[0][0][1], True, question, made[0][0][0], kind, group))
                negatives.append(Pair(reference, made[1][0][1], False, question, made[1][0][0], kind, group))
        rng.shuffle(positives)
        rng.shuffle(negatives)
        per_kind[kind] = (positives, negatives)
    found = [k for k in kinds if per_kind[k][0] and per_kind[k][1]]
    if not found:
        raise MedixError(f"no items to build audit pairs of kind {', '.join(kinds)} from; pass --tasks with tasks "
                         "that have them (MCQ tasks for options / frames, VQA tasks for yesno / laterality / "
                         "location), --sample, or --pairs")
    pairs = []
    halves = None if n is None else n // 2  # positive-negative couples in all, shared evenly (the first kinds
    for index, kind in enumerate(found):    # take the remainder), so `n` is never exceeded
        positives, negatives = per_kind[kind]
        wanted = None if halves is None else halves // len(found) + (index < halves % len(found))
        half = min(len(positives), len(negatives)) if wanted is None else min(wanted, len(positives), len(negatives))
        pairs += positives[:half] + negatives[:half]
    return pairs


def pairs_from_file(path: str | Path) -> list[Pair]:
    """A user's labelled pairs: JSONL with reference, candidate, label (true/false or 1/0), optional question,
    source (the category), kind and group (pairs of one group share a calibration fold)."""
    from medix.data.datasets import read_records

    path = Path(path)
    pairs = []
    for row, record in enumerate(read_records(path), 1):
        for name in ("reference", "candidate"):
            if not isinstance(record.get(name), str):
                raise MedixError(f"{where(path, row, name)}: missing or not a string")
        label = record.get("label")
        if label not in (True, False, 0, 1, "yes", "no", "true", "false"):
            raise MedixError(f"{where(path, row, 'label')}: expected true/false or 1/0, got {label!r}")
        question = str(record.get("question") or "")
        pairs.append(Pair(record["reference"], record["candidate"], label in (True, 1, "yes", "true"), question,
                          str(record.get("source") or "file"), str(record.get("kind") or "file"),
                          str(record.get("group") or "")))  # no group: the audit groups by question + reference
    if not pairs:
        raise MedixError(f"{path}: no pairs")
    return pairs
