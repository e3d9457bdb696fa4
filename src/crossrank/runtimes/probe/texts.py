"""The probe's built-in texts: three domains of eight short passages each, written for
crossrank, the probe queries graded against them, and the int8 calibration sample (other
queries against the same passages).
"""

from __future__ import annotations

__all__ = ["PROBE_QUERIES", "calibration_pairs", "probe_cases", "timing_case"]

_PASSAGES: tuple[tuple[str, ...], ...] = (
    (  # health and medicine
        "Vitamin D helps the intestine absorb calcium and phosphate, the two minerals that "
        "make bone hard. In adults who are deficient, supplements of 800 to 1,000 units a day "
        "raised blood levels of 25-hydroxyvitamin D within three months, and trials in older "
        "people living in care homes found fewer hip fractures when vitamin D was given "
        "together with calcium. Given alone, without calcium, the same doses did not reduce "
        "fractures in people who already had normal levels.",
        "Bone density falls by about one percent a year after the age of fifty, faster in "
        "women in the years after menopause. Weight-bearing exercise such as walking, stair "
        "climbing and resistance training slows the loss, and in several randomized trials it "
        "also improved balance, which matters because most fractures in older people follow "
        "a fall. Smoking and heavy drinking speed up bone loss.",
        "Statins lower LDL cholesterol by blocking HMG-CoA reductase, an enzyme the liver "
        "needs to make cholesterol. In large trials, each reduction of LDL by one millimole "
        "per litre cut major vascular events such as heart attack and stroke by about a "
        "fifth over five years. Muscle pain is the side effect patients report most, though "
        "in blinded trials it was almost as common on placebo.",
        "Adults who sleep less than six hours a night have higher blood pressure, gain more "
        "weight and report more infections than those who sleep seven to eight hours. In "
        "laboratory studies a single week of short sleep reduced insulin sensitivity in "
        "healthy young men, and the response to a vaccine was weaker in people who had slept "
        "badly in the nights before the injection.",
        "Type 2 diabetes develops when the body's cells respond poorly to insulin and the "
        "pancreas cannot make enough extra insulin to compensate. Metformin, usually the "
        "first drug prescribed, lowers the amount of glucose the liver releases. Losing five "
        "to ten percent of body weight improves blood sugar control, and some people who "
        "lose more than fifteen kilograms go into remission.",
        "Antibiotic resistance spreads when bacteria exchange genes on small circles of DNA "
        "called plasmids. Using antibiotics when they are not needed, for example for viral "
        "colds, and stopping a course early both give resistant strains an advantage. "
        "Hospitals track resistant infections such as MRSA and limit the use of the last "
        "drugs that still work against them.",
        "The influenza vaccine is updated every year because the virus changes its surface "
        "proteins, a process called antigenic drift. How well the vaccine works depends on "
        "how closely the chosen strains match the ones that circulate; in good seasons it "
        "prevents about half of the illnesses that need a doctor's visit, and it lowers the "
        "risk of severe disease in older adults.",
        "Calcium supplements taken without vitamin D had little effect on fracture rates in "
        "most trials, and high doses were linked with kidney stones. Dietary calcium from "
        "milk, cheese, yoghurt, tofu and green vegetables is absorbed as well as tablets. "
        "Guidelines advise around 1,000 milligrams a day for adults and more for women over "
        "fifty.",
    ),
    (  # software and computing
        "A database index is a separate data structure, most often a B-tree, that keeps the "
        "values of one or more columns sorted together with pointers to the rows. A query "
        "that filters on an indexed column can find matching rows in logarithmic time "
        "instead of scanning the whole table. Every index slows down inserts and updates, "
        "because it has to be kept in step with the table.",
        "A cache keeps the results of expensive operations close to where they are used. "
        "The hard part is invalidation: when the underlying data changes, stale entries must "
        "be removed or refreshed. Common policies evict the least recently used entry when "
        "the cache is full, and give each entry a time to live after which it expires.",
        "Python's global interpreter lock lets only one thread execute Python bytecode at a "
        "time, so threads do not speed up CPU-bound pure Python code. They still help with "
        "input and output, and libraries such as NumPy release the lock inside their "
        "compiled loops. For CPU-bound work, processes or native extensions are the usual "
        "answer.",
        "A composite index on two columns, say last name then first name, helps queries that "
        "filter on the last name alone or on both, but not queries that filter only on the "
        "first name, because the entries are sorted by the first column of the index. Query "
        "planners use statistics about the data to decide whether an index scan is cheaper "
        "than reading the table.",
        "Version control systems such as Git record every change to a set of files as a "
        "commit with a parent, which makes the history a directed acyclic graph. Branches "
        "are movable names for commits, so creating one is cheap. A merge joins two lines of "
        "history, and conflicts appear only where both sides changed the same lines.",
        "Garbage collectors free memory that a program can no longer reach. A tracing "
        "collector starts from the roots, such as the stack and global variables, and marks "
        "everything reachable; generational collectors scan young objects more often "
        "because most objects die young. Reference counting frees objects as soon as the "
        "last reference goes, but needs help with cycles.",
        "Transport Layer Security encrypts traffic between a browser and a server. During "
        "the handshake the two sides agree on keys, and the server proves its identity with "
        "a certificate signed by an authority the browser trusts. Version 1.3 of the "
        "protocol removed old ciphers and needs one fewer round trip than earlier versions.",
        "Without an index, a query that looks for one customer by email must read every row "
        "of the table, which takes time proportional to the size of the table. Adding an "
        "index on the email column turned such a lookup from seconds into milliseconds on a "
        "table of ten million rows, at the price of extra disk space and slower writes.",
    ),
    (  # earth and environment
        "Coral bleaching happens when water stays too warm for too long and corals expel the "
        "algae that live in their tissues and feed them. Without the algae the coral turns "
        "white and starves unless temperatures fall within weeks. Marine heatwaves in 2016 "
        "and 2017 bleached large parts of the Great Barrier Reef, and many corals died.",
        "Mountain glaciers have lost mass almost everywhere since the 1970s, and the loss "
        "has sped up in this century. Meltwater feeds rivers in dry summers, so towns and "
        "farms below glaciers in the Andes and the Himalaya depend on it. As glaciers "
        "shrink, summer river flow first rises and then falls.",
        "Ocean acidification is the fall in the pH of seawater as it absorbs carbon dioxide "
        "from the air. More acidic water holds less carbonate, which corals, oysters and "
        "some plankton need to build shells and skeletons. The surface ocean has become "
        "about thirty percent more acidic since the start of the industrial era.",
        "Healthy soil holds carbon, water and the microbes that recycle nutrients. Ploughing "
        "breaks up soil structure and speeds the loss of organic matter, while cover crops "
        "and leaving crop residue on the field protect the surface from erosion. Some "
        "farmers have raised soil carbon over a decade by changing how they till.",
        "Reefs can recover from bleaching if the heat stress is short and other pressures "
        "are low. Studies after mass bleaching found that reefs with clear water, many "
        "herbivorous fish and little pollution regrew coral cover within ten to fifteen "
        "years, while reefs hit again before they recovered lost most of their corals.",
        "Wetlands store large amounts of carbon in waterlogged soil where decay is slow, and "
        "they reduce flooding by holding water after heavy rain. Draining peatlands for "
        "farming releases that carbon as the peat dries and oxidises. Restoring wetlands by "
        "blocking drainage ditches raises the water table again.",
        "Wind and solar power now supply a growing share of electricity in many countries. "
        "Because their output varies with the weather, grids balance them with storage, "
        "flexible gas plants, links to neighbouring regions and demand that can shift in "
        "time. The cost of solar panels fell by about ninety percent between 2010 and 2020.",
        "Sea surface temperatures during El Nino years are higher across the central and "
        "eastern Pacific, and coral reefs in the region bleach more often in those years. "
        "Scientists use satellite measurements of water temperature to issue bleaching "
        "alerts weeks in advance, which lets reef managers plan surveys.",
    ),
)

#: Probe queries: (domain index, query). Each domain's passages are graded for it.
_PROBE_QUERIES: tuple[tuple[int, str], ...] = (
    (0, "does vitamin D prevent fractures in older adults"),
    (0, "what lowers the risk of heart attack"),
    (1, "how does an index speed up database queries"),
    (1, "why do threads not make python code faster"),
    (2, "what causes coral bleaching"),
    (2, "how do glaciers affect river flow"),
)

#: Calibration queries for int8: other wordings, other questions.
_CALIBRATION_QUERIES: tuple[str, ...] = (
    "calcium intake and bone health",
    "side effects of cholesterol drugs",
    "when should a cache entry expire",
    "how git merges branches",
    "effects of carbon dioxide on the ocean",
    "how farming changes soil carbon",
    "sleep and the immune response",
    "grid storage for renewable energy",
)


#: The probe's queries; each is scored against all 24 built-in passages.
PROBE_QUERIES: tuple[str, ...] = tuple(q for _, q in _PROBE_QUERIES)


def _passages() -> list[str]:
    return [p for domain in _PASSAGES for p in domain]


def probe_cases(small: bool = False) -> list[tuple[str, list[str]]]:
    """The agreement cases: each probe query with all 24 built-in passages.

    ``small`` (for a model too slow for the full probe, :mod:`crossrank.runtimes.probe.run`):
    one query per domain, each with 12 passages, its own domain's 8 and 2 of each other's.
    """
    passages = _passages()
    if not small:
        return [(query, list(passages)) for query in PROBE_QUERIES]
    cases = []
    for domain in range(len(_PASSAGES)):
        query = next(q for d, q in _PROBE_QUERIES if d == domain)
        others = [p for d, group in enumerate(_PASSAGES) if d != domain for p in group[:2]]
        cases.append((query, [*_PASSAGES[domain], *others]))
    return cases


def timing_case(size: int = 16) -> tuple[str, list[str]]:
    """The timing case: one query and ``size`` texts (16 by default) of three passages each
    (about 220 tokens)."""
    passages = _passages()
    n = len(passages)
    texts = [" ".join(passages[(i + k * 7) % n] for k in range(3)) for i in range(size)]
    return _PROBE_QUERIES[0][1], texts


def calibration_pairs() -> list[tuple[str, str]]:
    """The built-in int8 calibration sample: 48 (query, text) pairs.

    Each of eight calibration queries (other wordings than the probe's) is paired with six
    texts of one to six passages joined, so that the pairs span about 60 to 450 tokens and
    both related and unrelated texts.
    """
    passages = _passages()
    n = len(passages)
    pairs = []
    for qi, query in enumerate(_CALIBRATION_QUERIES):
        for width in range(1, 7):
            start = (qi * 5 + width * 7) % n
            pairs.append((query, " ".join(passages[(start + k) % n] for k in range(width))))
    return pairs
