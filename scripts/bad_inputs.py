"""A battery of bad inputs through the ``flr`` command: each must end in one clear error line, exit status 2, no
traceback, no output written, and no model loaded (every check comes before the slow work).

    python scripts/bad_inputs.py            # prints one line per case; exit status: the number of failures

Each case names what the error must mention (the file, its line, the field, the flag). The test suite runs this
script (tests/test_bad_inputs.py).
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path

GOOD = {"prompt": "What is 2+2?", "response": "4."}
PAIR = {"prompt": "What is 2+2?", "chosen": "4.", "rejected": "5."}
CANDS = {"prompt": "What is 2+2?", "candidates": ["4.", "Four.", "5."]}


def jsonl(*rows) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


# (name, files {name: text or bytes}, argv with {dir} for the scratch folder, words the error must contain)
CASES = [
    ("empty prompt", {"a.jsonl": jsonl(GOOD, {"prompt": "", "response": "x"})}, ["score", "{dir}/a.jsonl"],
     ["a.jsonl:2", "prompt"]),
    ("number as prompt", {"a.jsonl": jsonl({"prompt": 3, "response": "x"})}, ["score", "{dir}/a.jsonl"],
     ["a.jsonl:1", "prompt"]),
    ("null response", {"a.jsonl": jsonl(GOOD, GOOD, {"prompt": "q", "response": None})}, ["score", "{dir}/a.jsonl"],
     ["a.jsonl:3", "response"]),
    ("malformed JSON line", {"a.jsonl": jsonl(GOOD, '{"prompt": "q", "respo')}, ["score", "{dir}/a.jsonl"],
     ["a.jsonl:2"]),
    ("bad messages", {"a.jsonl": jsonl({"messages": [{"role": "user"}]})}, ["score", "{dir}/a.jsonl"],
     ["a.jsonl:1", "messages"]),
    ("binary file", {"a.jsonl": b"\xff\xfe\x00\x01garbage"}, ["score", "{dir}/a.jsonl"], ["a.jsonl"]),
    ("JSON number at top level", {"a.json": "42"}, ["score", "{dir}/a.json"], ["a.json"]),
    ("input is a directory", {}, ["score", "{dir}"], ["directory"]),
    ("input does not exist", {}, ["score", "{dir}/missing.jsonl"], ["missing.jsonl"]),
    ("output is a directory", {"a.jsonl": jsonl(GOOD)}, ["score", "{dir}/a.jsonl", "-o", "{dir}"], ["directory"]),
    ("empty input file", {"a.jsonl": ""}, ["score", "{dir}/a.jsonl"], ["a.jsonl", "no records"]),
    ("negative --limit", {"a.jsonl": jsonl(GOOD)}, ["score", "{dir}/a.jsonl", "--limit", "-1"], ["--limit"]),
    ("zero --batch-size", {"a.jsonl": jsonl(GOOD)}, ["score", "{dir}/a.jsonl", "--batch-size", "0"],
     ["--batch-size"]),
    ("zero --token-budget", {"a.jsonl": jsonl(GOOD)}, ["score", "{dir}/a.jsonl", "--token-budget", "0"],
     ["--token-budget"]),
    ("unknown scorer", {"a.jsonl": jsonl(GOOD)}, ["score", "{dir}/a.jsonl", "--scorer", "nope"], ["nope"]),
    ("broken follow-up YAML", {"a.jsonl": jsonl(GOOD), "f.yaml": "categories: [unclosed"},
     ["score", "{dir}/a.jsonl", "--followups", "{dir}/f.yaml"], ["f.yaml"]),
    ("model folder that does not exist", {"a.jsonl": jsonl(GOOD)},
     ["score", "{dir}/a.jsonl", "--model", "./no/such/model"], ["no/such/model"]),
    ("eval: empty chosen", {"p.jsonl": jsonl(PAIR, {**PAIR, "chosen": ""})},
     ["eval", "--benchmarks", "{dir}/p.jsonl", "--scorers", "flr"], ["p.jsonl:2", "chosen"]),
    ("eval: null rejected", {"p.jsonl": jsonl({**PAIR, "rejected": None})},
     ["eval", "--benchmarks", "{dir}/p.jsonl", "--scorers", "flr"], ["p.jsonl:1", "rejected"]),
    ("eval: unknown benchmark", {}, ["eval", "--benchmarks", "nope"], ["nope"]),
    ("eval: unknown scorer", {}, ["eval", "--benchmarks", "demo", "--scorers", "flr,bogus"], ["bogus"]),
    ("eval: negative --limit", {}, ["eval", "--benchmarks", "demo", "--limit", "-1"], ["--limit"]),
    ("mine: candidates not a list", {"c.jsonl": jsonl({"prompt": "q", "candidates": "a"})},
     ["mine", "--candidates", "{dir}/c.jsonl"], ["c.jsonl:1", "candidates"]),
    ("eval: --length-ratio 1", {"p.jsonl": jsonl(PAIR)}, ["eval", "--benchmarks", "{dir}/p.jsonl", "--length-ratio", "1"],
     ["--length-ratio", "greater than 1"]),
    ("eval: unknown length_debias in --config", {"p.jsonl": jsonl(PAIR), "c.yaml": "length_debias: sideways\n"},
     ["eval", "--benchmarks", "{dir}/p.jsonl", "--config", "{dir}/c.yaml"], ["--length-debias", "sideways"]),
    ("followups select: no length-matched pair", {"p.jsonl": jsonl(dict(PAIR, chosen="A long answer: four."))},
     ["followups", "select", "--benchmark", "{dir}/p.jsonl"], ["length-matched", "--rank-on all"]),
    ("mine: --length-band 1", {"c.jsonl": jsonl(CANDS)}, ["mine", "--candidates", "{dir}/c.jsonl", "--length-band", "1"],
     ["--length-band", "greater than 1"]),
    ("mine: --length-band with kto", {"c.jsonl": jsonl(CANDS)},
     ["mine", "--candidates", "{dir}/c.jsonl", "--length-band", "1.25", "--format", "kto"], ["--length-band", "dpo"]),
    ("mine: unknown length_debias in --config", {"c.jsonl": jsonl(CANDS), "c.yaml": "length_debias: sideways\n"},
     ["mine", "--candidates", "{dir}/c.jsonl", "--config", "{dir}/c.yaml"], ["--length-debias", "sideways"]),
    ("score: unknown length_debias in --config", {"a.jsonl": jsonl(GOOD), "c.yaml": "length_debias: all\n"},
     ["score", "{dir}/a.jsonl", "--config", "{dir}/c.yaml"], ["--length-debias", "'all'"]),
    ("mine: --kto-fraction above 0.5", {"c.jsonl": jsonl(CANDS)},
     ["mine", "--candidates", "{dir}/c.jsonl", "--format", "kto", "--kto-fraction", "0.9"], ["--kto-fraction"]),
    ("followups select: --top 0", {"p.jsonl": jsonl(PAIR)},
     ["followups", "select", "--benchmark", "{dir}/p.jsonl", "--top", "0"], ["--top"]),
    ("followups select: --length-ratio 1", {"p.jsonl": jsonl(PAIR)},
     ["followups", "select", "--benchmark", "{dir}/p.jsonl", "--length-ratio", "1"], ["--length-ratio"]),
    ("followups select: --limit 0", {"p.jsonl": jsonl(PAIR)},
     ["followups", "select", "--benchmark", "{dir}/p.jsonl", "--limit", "0"], ["--limit"]),
    ("followups fit: no --benchmarks", {}, ["followups", "fit", "-o", "{dir}/w.yaml"], ["--benchmarks"]),
    ("followups fit: --limit 0", {"p.jsonl": jsonl(PAIR)},
     ["followups", "fit", "--benchmarks", "{dir}/p.jsonl", "--limit", "0", "-o", "{dir}/w.yaml"], ["--limit"]),
    ("generate: --k 0", {"q.jsonl": jsonl({"prompt": "q"})},
     ["generate", "--prompts", "{dir}/q.jsonl", "--k", "0", "--output-dir", "{dir}/run"], ["--k"]),
    ("generate: --max-new-tokens 0", {"q.jsonl": jsonl({"prompt": "q"})},
     ["generate", "--prompts", "{dir}/q.jsonl", "--max-new-tokens", "0", "--output-dir", "{dir}/run"],
     ["--max-new-tokens"]),
    ("generate: --generation-batch-size 0", {"q.jsonl": jsonl({"prompt": "q"})},
     ["generate", "--prompts", "{dir}/q.jsonl", "--generation-batch-size", "0", "--output-dir", "{dir}/run"],
     ["--generation-batch-size"]),
    ("eval: a benchmark given twice", {}, ["eval", "--benchmarks", "demo,demo"], ["demo", "given twice"]),
    ("mine: --kto-fraction 0", {"c.jsonl": jsonl(CANDS)},
     ["mine", "--candidates", "{dir}/c.jsonl", "--format", "kto", "--kto-fraction", "0"], ["--kto-fraction"]),
    ("score: unknown --contrast", {"a.jsonl": jsonl(GOOD)}, ["score", "{dir}/a.jsonl", "--contrast", "nope"],
     ["--contrast", "nope"]),
    ("eval: a --contrast edit that changes nothing", {"p.jsonl": jsonl(PAIR), "same.py": "from flr.perturbations import perturbation\n\n@perturbation('same')\ndef same(prompt, response):\n    return response\n"},
     ["eval", "--benchmarks", "{dir}/p.jsonl", "--contrast", "same", "--contrast-file", "{dir}/same.py"],
     ["--contrast", "same", "unchanged"]),
    ("mine: --contrast that needs another record", {"c.jsonl": jsonl(CANDS)},
     ["mine", "--candidates", "{dir}/c.jsonl", "--contrast", "other_response"], ["other_response"]),
    ("audit: --style-debias with --length-debias", {"p.jsonl": jsonl(PAIR)},
     ["audit", "{dir}/p.jsonl", "--style-debias", "batch", "--length-debias", "batch"], ["--style-debias"]),
    ("score: unknown --style-debias in --config", {"a.jsonl": jsonl(GOOD), "c.yaml": "style_debias: lowess\n"},
     ["score", "{dir}/a.jsonl", "--config", "{dir}/c.yaml"], ["--style-debias", "lowess"]),
    ("score: --length-term with a set fitted without length", {"a.jsonl": jsonl(GOOD)},
     ["score", "{dir}/a.jsonl", "--followups", "compact", "--length-term"], ["--length-term", "--control-length"]),
    ("train dpo: --ld-alpha above 1", {"p.jsonl": jsonl(PAIR)},
     ["train", "dpo", "--data", "{dir}/p.jsonl", "--output-dir", "{dir}/run", "--ld-alpha", "1.5"], ["--ld-alpha"]),
    ("train grpo: unknown --reward-scorer", {"q.jsonl": jsonl({"prompt": "q"})},
     ["train", "grpo", "--data", "{dir}/q.jsonl", "--output-dir", "{dir}/run", "--reward-scorer", "foo"],
     ["--reward-scorer", "foo"]),
    ("train grpo: data without prompts", {"q.jsonl": jsonl({"question": "q"})},
     ["train", "grpo", "--data", "{dir}/q.jsonl", "--output-dir", "{dir}/run", "--reward-scorer", "length"],
     ["q.jsonl:1", "prompt"]),
    ("train grpo: an empty prompt", {"q.jsonl": jsonl({"prompt": "q"}, {"prompt": ""})},
     ["train", "grpo", "--data", "{dir}/q.jsonl", "--output-dir", "{dir}/run", "--reward-scorer", "length"],
     ["q.jsonl:2", "prompt"]),
    ("train grpo: a batch GRPO cannot split into groups", {"q.jsonl": jsonl({"prompt": "q"})},
     ["train", "grpo", "--data", "{dir}/q.jsonl", "--output-dir", "{dir}/run", "--per-device-train-batch-size", "6",
      "--num-generations", "4"], ["num_generations", "--per-device-train-batch-size"]),
    ("train grpo: a follow-up set that does not exist", {"q.jsonl": jsonl({"prompt": "q"})},
     ["train", "grpo", "--data", "{dir}/q.jsonl", "--output-dir", "{dir}/run", "--followups", "{dir}/none.yaml"],
     ["none.yaml"]),
    ("eval: implicit: of a folder that is not a policy", {"notes.txt": "x"},
     ["eval", "--benchmarks", "demo", "--scorers", "implicit:{dir}", "-o", "{dir}/run"], ["not a policy"]),
    ("eval: implicit: of a missing folder", {}, ["eval", "--benchmarks", "demo", "--scorers",
     "implicit:{dir}/missing", "-o", "{dir}/run"], ["missing", "not found"]),
    ("compare: a prompt without its reference", {"p.jsonl": jsonl({"prompt": "q", "reference": "r"}, {"prompt": "p"})},
     ["compare", "--candidate", "default", "--prompts", "{dir}/p.jsonl", "--reference-field", "reference",
      "--output-dir", "{dir}/run"], ["p.jsonl:2", "reference"]),
    ("pipeline: grpo with a mine stage", {"p.yaml": "method: grpo\nstages: [generate, mine, train]\n"},
     ["pipeline", "--config", "{dir}/p.yaml", "--output-dir", "{dir}/run"], ["grpo", "generate or mine"]),
    ("pipeline: length_band 1 in the mine section", {"p.yaml": "mine:\n  length_band: 1\n"},
     ["pipeline", "--config", "{dir}/p.yaml", "--output-dir", "{dir}/run"], ["--length-band"]),
    ("audit: unknown perturbation", {"a.jsonl": jsonl(GOOD)},
     ["audit", "{dir}/a.jsonl", "--perturbations", "closer,nope"], ["nope", "closer"]),
    ("audit: perturbations file defines none", {"a.jsonl": jsonl(GOOD), "p.py": "x = 1\n"},
     ["audit", "{dir}/a.jsonl", "--perturbations-file", "{dir}/p.py"], ["p.py", "no perturbation"]),
    ("audit: perturbations file fails", {"a.jsonl": jsonl(GOOD), "p.py": "import no_such_module\n"},
     ["audit", "{dir}/a.jsonl", "--perturbations-file", "{dir}/p.py"], ["p.py", "no_such_module"]),
    ("audit: empty input", {"a.jsonl": ""}, ["audit", "{dir}/a.jsonl"], ["a.jsonl", "no records"]),
    ("audit: bad record", {"a.jsonl": jsonl(GOOD, {"prompt": "q", "response": ""})}, ["audit", "{dir}/a.jsonl"],
     ["a.jsonl:2", "response"]),
    ("audit: unknown scorer", {"a.jsonl": jsonl(GOOD)}, ["audit", "{dir}/a.jsonl", "--scorers", "flr,bogus"],
     ["bogus"]),
    ("config: unknown key", {"a.jsonl": jsonl(GOOD), "c.yaml": "bogus_key: 1\n"},
     ["score", "{dir}/a.jsonl", "--config", "{dir}/c.yaml"], ["bogus_key"]),
    ("config: not a mapping", {"a.jsonl": jsonl(GOOD), "c.yaml": "- a\n- b\n"},
     ["score", "{dir}/a.jsonl", "--config", "{dir}/c.yaml"], ["c.yaml"]),
    ("config: a value of the wrong type", {"p.jsonl": jsonl(PAIR), "c.yaml": "learning_rate: abc\n"},
     ["train", "dpo", "--data", "{dir}/p.jsonl", "--config", "{dir}/c.yaml"], ["c.yaml", "learning_rate", "abc"]),
    ("config: a float for an int", {"a.jsonl": jsonl(GOOD), "c.yaml": "batch_size: 1.5\n"},
     ["score", "{dir}/a.jsonl", "--config", "{dir}/c.yaml"], ["c.yaml", "batch_size", "1.5"]),
    ("pipeline: a value of the wrong type in the train section", {"p.yaml": "train:\n  max_steps: many\n"},
     ["pipeline", "--config", "{dir}/p.yaml", "--output-dir", "{dir}/run"], ["train", "max_steps", "many"]),
]  # fmt: skip


class ModelLoaded(Exception):
    pass


def run_case(argv: list[str]) -> tuple[int | None, str, BaseException | None]:
    """(exit status, stderr, an exception that escaped) of ``flr argv`` in this process, with model loading
    forbidden."""
    import flr.kernel.models
    from flr.cli import main

    def forbidden(*args, **kwargs):
        raise ModelLoaded("a model was loaded before the input was checked")

    real = flr.kernel.models.load_model  # patched where it is defined, so modules a case imports bind `forbidden`
    holders = [
        m for name, m in list(sys.modules.items()) if name.startswith("flr") and getattr(m, "load_model", None) is real
    ]
    for module in holders:
        module.load_model = forbidden
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            status = main(argv)
        return status, err.getvalue(), None
    except SystemExit as exc:
        return exc.code, err.getvalue(), None
    except BaseException as exc:  # noqa: BLE001 - a traceback is what this battery looks for
        return None, err.getvalue(), exc
    finally:
        for module in holders + [m for m in list(sys.modules.values()) if getattr(m, "load_model", None) is forbidden]:
            module.load_model = real


def main() -> int:
    failures = 0
    for name, files, argv, words in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            for fname, content in files.items():
                path = Path(tmp) / fname
                path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
            args = [a.replace("{dir}", tmp) for a in argv]
            if args[0] == "score" and "-o" not in args:
                args += ["-o", f"{tmp}/out.jsonl"]
            if args[0] in ("eval", "mine", "audit"):
                args += ["--output-dir", f"{tmp}/run"]
            status, err, exc = run_case(args)
            lines = [line for line in err.strip().splitlines() if line.strip() and not line.startswith("flr: ")]
            problems = []
            if exc is not None:
                problems.append(f"raised {type(exc).__name__}: {exc}")
            if status != 2:
                problems.append(f"exit status {status}, not 2")
            if len(lines) != 1:
                problems.append(f"{len(lines)} error lines")
            if "Traceback" in err:
                problems.append("traceback")
            missing = [w for w in words if w not in err]
            if missing:
                problems.append(f"the error does not name {missing}")
            if Path(tmp, "out.jsonl").exists() and Path(tmp, "out.jsonl").stat().st_size:
                problems.append("wrote output")
        failures += bool(problems)
        shown = lines[-1] if lines else err.strip()[:200]
        print(
            f"{'ok  ' if not problems else 'FAIL'} {name}: {shown}"
            + (f"  <- {'; '.join(problems)}" if problems else "")
        )
    print(f"{len(CASES) - failures}/{len(CASES)} bad inputs rejected cleanly")
    return failures


if __name__ == "__main__":
    sys.exit(main())
