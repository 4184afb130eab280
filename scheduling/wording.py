"""Words that reveal a patient's treatment or condition, and the check that finds them.

DESIGN §2: a text message, an e-mail subject, and every name a patient reads (a location's or a
type's public name) say nothing of the treatment, a diagnosis or a drug. The message preview
(notifications.preview) and the setup pages' public names check against the same lists.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from django.core.exceptions import ValidationError

# DESIGN §2: never in a text message or an e-mail subject (and we keep them out of e-mail
# bodies too: the details sit behind the secure link). Matched as whole words, in any case.
TREATMENT_WORDS = (
    "ketamine",
    "esketamine",
    "ketalar",
    "spravato",
    "infusion",
    "infusions",
    "IV",
    "REMS",
    "nasal spray",
    "anesthesia",
    "anaesthesia",
    "psychiatric",
    "psychiatry",
    "psychedelic",
    "mood",
)
DIAGNOSES = (
    "depression",
    "depressive",
    "depressed",
    "treatment-resistant",
    "suicide",
    "suicidal",
    "PTSD",
    "anxiety",
    "bipolar",
    "OCD",
    "schizophrenia",
    "chronic pain",
    "CRPS",
    "fibromyalgia",
)
DRUGS = (
    "midazolam",
    "lorazepam",
    "ondansetron",
    "zofran",
    "naloxone",
    "narcan",
    "clonidine",
    "propofol",
    "benzodiazepine",
    "antidepressant",
    "antidepressants",
    "SSRI",
)
# Fasting details go by e-mail or behind the link, never in a text message.
FASTING_WORDS = (
    "eat",
    "eating",
    "food",
    "fast",
    "fasting",
    "solids",
    "liquid",
    "liquids",
    "drink",
    "drinking",
    "nothing by mouth",
    "NPO",
)
NEVER_SAID = TREATMENT_WORDS + DIAGNOSES + DRUGS


def words_found(text: str, words: Iterable[str]) -> list[str]:
    """Which of ``words`` (whole words or phrases, any case) ``text`` contains, as written in
    the text, each once, in order of appearance."""
    alternatives = "|".join(
        re.escape(w) for w in sorted({w for w in words if w.strip()}, key=len, reverse=True)
    )
    if not alternatives:
        return []
    pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)
    found: dict[str, None] = {}
    for match in pattern.finditer(text):
        found.setdefault(match.group(0).lower(), None)
    return list(found)


def validate_neutral(value: str) -> None:
    """A name patients read must not reveal the treatment: refused, naming the words."""
    found = words_found(value, NEVER_SAID)
    if found:
        raise ValidationError(
            f"Patients read this name in every page and message: it must not name the "
            f"treatment, a condition or a drug ({', '.join(found)})."
        )
