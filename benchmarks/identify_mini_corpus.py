#!/usr/bin/env python3
"""Closed- and open-set speaker identification on the mini corpus.

    python benchmarks/identify_mini_corpus.py MODEL CORPUS [--enrol 3] [--threshold T] [--p-unknown P ...]

MODEL is a model folder (e.g. the demo's ``exported_model``), CORPUS a folder
written by ``python tools/mini_corpus.py`` (its ``corpus.json``
names the held-out speakers). Each test speaker is enrolled from its first
``--enrol`` utterances in path order (``TDYSpeakerRecognition.enroll``); its
other utterances are identified (``identify``), and so are all utterances of
the dev speakers, who are not enrolled. Prints

* top-1 accuracy: the best-scoring enrolled speaker is the right one
  (closed set, threshold ignored);
* identification rate: right speaker and accepted (score above the threshold);
* open-set rejection rate: dev speakers' utterances answered ``unknown``;

at the model's calibrated threshold (or ``--threshold``), and at the
threshold where the last two are equal (an oracle operating point, chosen on
these same trials); and, for a model calibrated to log-likelihood ratios,
the last two when ``identify`` answers from the posteriors at each prior
``--p-unknown`` of an unknown speaker (default 0.5). The last line is JSON.
"""
import argparse
import json
import sys
from pathlib import Path

from speechbrain_tdy.inference import TDYSpeakerRecognition
from speechbrain_tdy.inference.gallery import UNKNOWN

#: A threshold below any score: identify() then gives the closed-set answer.
ACCEPT_ALL = -1e30


def utterances_of(corpus, speaker):
    """Sorted wav paths of one speaker of the corpus."""
    return sorted(str(path) for path in (Path(corpus) / "wav" / speaker).rglob("*.wav"))


def best_match(model, path):
    """(name, score) of the enrolled speaker closest to ``path``."""
    names, scores = model.identify(path, threshold=ACCEPT_ALL)
    return names[0], float(scores[0])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("corpus")
    parser.add_argument("--enrol", type=int, default=3, help="utterances enrolled per test speaker")
    parser.add_argument("--threshold", type=float, default=None, help="default: the model's calibrated one")
    parser.add_argument("--p-unknown", type=float, nargs="+", default=[0.5],
                        help="priors of an unknown speaker at which identify() decides from posteriors")
    args = parser.parse_args(argv)
    split = json.loads((Path(args.corpus) / "corpus.json").read_text())["speakers"]
    model = TDYSpeakerRecognition.from_hparams(source=args.model, run_opts={"device": "cpu"})
    threshold = model.decision_threshold() if args.threshold is None else args.threshold
    known = []
    for speaker in split["test"]:
        files = utterances_of(args.corpus, speaker)
        model.enroll(speaker, files[: args.enrol])
        known += [(speaker, path) for path in files[args.enrol :]]
    unknown = [path for speaker in split["dev"] for path in utterances_of(args.corpus, speaker)]

    known_best = [(speaker, *best_match(model, path)) for speaker, path in known]
    unknown_scores = [best_match(model, path)[1] for path in unknown]
    correct_scores = [score for speaker, name, score in known_best if name == speaker]

    def rates(t):
        """(identified and accepted, unknowns rejected), percent, at threshold t."""
        return (100 * sum(s > t for s in correct_scores) / len(known),
                100 * sum(s <= t for s in unknown_scores) / len(unknown))

    equal = min(sorted(correct_scores + unknown_scores), key=lambda t: abs(rates(t)[0] - rates(t)[1]))
    result = {
        "enrolled_speakers": len(split["test"]), "enrol_utterances": args.enrol, "known_trials": len(known),
        "unknown_speakers": len(split["dev"]), "unknown_trials": len(unknown), "threshold": round(threshold, 4),
        "top1_accuracy": round(100 * len(correct_scores) / len(known), 2),
        "identification_rate": round(rates(threshold)[0], 2),
        "open_set_rejection_rate": round(rates(threshold)[1], 2),
        "equal_rate_threshold": round(equal, 4),
        "equal_rate_identification": round(rates(equal)[0], 2),
        "equal_rate_rejection": round(rates(equal)[1], 2),
    }
    report = [
        f"{len(split['test'])} speakers enrolled from {args.enrol} utterances each; {len(known)} known and "
        f"{len(unknown)} unknown ({len(split['dev'])} dev speakers) test utterances; threshold {threshold:.4f}",
        f"top-1 accuracy {result['top1_accuracy']}%; at the threshold: identified and accepted "
        f"{result['identification_rate']}%, unknown speakers rejected {result['open_set_rejection_rate']}%",
        f"threshold where both rates are equal (chosen on these trials): {equal:.4f}, identified and accepted "
        f"{result['equal_rate_identification']}%, unknown speakers rejected {result['equal_rate_rejection']}%",
    ]
    if model.calibration.llr is not None:
        result["posterior_decisions"] = {}
        for p_unknown in args.p_unknown:
            identified = 100 * sum(model.identify(path, p_unknown=p_unknown)[0][0] == speaker
                                   for speaker, path in known) / len(known)
            rejected = 100 * sum(model.identify(path, p_unknown=p_unknown)[0][0] == UNKNOWN
                                 for path in unknown) / len(unknown)
            result["posterior_decisions"][f"{p_unknown:g}"] = {"identification_rate": round(identified, 2),
                                                               "open_set_rejection_rate": round(rejected, 2)}
            report.append(f"posteriors at p_unknown {p_unknown:g}: identified and accepted {identified:.2f}%, "
                          f"unknown speakers rejected {rejected:.2f}%")
    report.append(json.dumps(result))
    print("\n".join(report))


if __name__ == "__main__":
    sys.exit(main())
