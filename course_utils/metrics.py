"""Caption metrics: BLEU (Papineni, Roukos, Ward and Zhu, 2002), sentence and corpus level.

A module of its own because students write sentence BLEU in the captioning notebook: the
grader treats this module as reference code (a solution cell may not call it).
"""
from __future__ import annotations

from collections import Counter
from math import exp, log

from .backend import to_numpy


def _as_tokens(seq):
    """A token list from a str (split on spaces), a list/tuple, or a 1-D array of ids."""
    if isinstance(seq, str):
        return seq.split()
    if hasattr(seq, "ndim"):  # a numpy or cupy array
        return to_numpy(seq).tolist()
    return list(seq)


def _is_sequence(x):
    return isinstance(x, (list, tuple)) or getattr(x, "ndim", 0) >= 1


def _as_references(refs):
    """One reference or several -> a list of token lists.

    A str is one reference; a 2-D array is one reference per row; a list is several
    references when it holds sequences or multi-word strings, else one tokenised reference.
    """
    if isinstance(refs, str):
        return [refs.split()]
    if hasattr(refs, "ndim"):
        refs = to_numpy(refs)
        return refs.tolist() if refs.ndim == 2 else [refs.tolist()]
    refs = list(refs)
    if any(_is_sequence(r) or (isinstance(r, str) and " " in r.strip()) for r in refs):
        return [_as_tokens(r) for r in refs]
    return [refs]


def _ngrams(tokens, n):
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def _bleu_counts(references, candidate, max_n):
    """Clipped n-gram matches and candidate n-gram totals for n = 1..max_n, the candidate
    length c and the effective reference length r (the closest, shorter on a tie)."""
    matches, totals = [], []
    for n in range(1, max_n + 1):
        cand = _ngrams(candidate, n)
        most = Counter()
        for ref in references:
            most |= _ngrams(ref, n)  # | keeps the maximum count over the references
        matches.append(sum(min(k, most[g]) for g, k in cand.items()))
        totals.append(max(len(candidate) - n + 1, 0))
    c = len(candidate)
    r = min((abs(len(ref) - c), len(ref)) for ref in references)[1]
    return matches, totals, c, r


def _bleu_from_counts(matches, totals, c, r, smooth):
    if c == 0 or matches[0] == 0:
        return 0.0
    log_p = 0.0
    for n, (m, t) in enumerate(zip(matches, totals), start=1):
        if smooth and n > 1:
            m, t = m + 1, t + 1
        if m == 0:
            return 0.0
        log_p += log(m / t) / len(matches)
    brevity = 1.0 if c > r else exp(1 - r / c)
    return brevity * exp(log_p)


# student-writes: assignment3/rnn_captioning
def bleu_score(reference_tokens, candidate_tokens, max_n=4, smooth=True):
    """Sentence BLEU of one candidate against one or several references.

    BLEU = BP * exp(sum_n (1/max_n) * log p_n), where p_n is the modified n-gram precision
    (each candidate n-gram counts at most as often as it appears in any one reference) and
    BP = exp(1 - r/c) when the candidate (length c) is not longer than the reference length
    r closest to c, else 1. A single sentence often has no matching 4-gram, which would make
    the score 0, so with ``smooth`` the precisions for n >= 2 use add-one smoothing,
    p_n = (matches + 1) / (total + 1) (Lin and Och, 2004). p_1 is never smoothed: a
    candidate with no word in common with the references scores exactly 0.

    reference_tokens: a token list, a str (split on spaces), or a list of those for several
    references. candidate_tokens: a token list or str. Tokens may be words or ids.
    """
    refs = _as_references(reference_tokens)
    return _bleu_from_counts(*_bleu_counts(refs, _as_tokens(candidate_tokens), max_n), smooth)


def corpus_bleu(list_of_references, candidates, max_n=4, smooth=False):
    """Corpus BLEU, as defined by Papineni et al.: the n-gram matches, n-gram totals and
    lengths are summed over all sentences before the precisions and the brevity penalty are
    computed (this is not the mean of the sentence scores). No smoothing by default.

    list_of_references[i] holds the reference(s) of candidates[i], in any form that
    ``bleu_score`` accepts.
    """
    if len(list_of_references) != len(candidates):
        raise ValueError(f"{len(list_of_references)} reference sets for {len(candidates)} "
                         "candidates")
    matches, totals, c_sum, r_sum = [0] * max_n, [0] * max_n, 0, 0
    for refs, cand in zip(list_of_references, candidates):
        m, t, c, r = _bleu_counts(_as_references(refs), _as_tokens(cand), max_n)
        matches = [a + b for a, b in zip(matches, m)]
        totals = [a + b for a, b in zip(totals, t)]
        c_sum, r_sum = c_sum + c, r_sum + r
    return _bleu_from_counts(matches, totals, c_sum, r_sum, smooth)
