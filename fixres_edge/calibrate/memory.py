"""Peak memory of a policy: a second model variant costs a second ONNX Runtime session.

:func:`policy_peak_rss` runs a fresh process that builds a Classifier with the policy, opens every
variant it names and runs each scale once (``Classifier.warmup``: the worst case, an image that
escalates to the last scale), and measures its peak RSS from outside
(:func:`fixres_edge.footprint.measure`).
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

#: The measured process: ``python -c POLICY_SCRIPT POLICY.json MODEL|- THREADS|-``.
POLICY_SCRIPT = r"""
import sys
from fixres_edge.runtime import Classifier
policy, model, threads = sys.argv[1], sys.argv[2], sys.argv[3]
threads = None if threads == "-" else int(threads)
Classifier(None if model == "-" else model, policy=policy, threads=threads).warmup()
"""


def policy_peak_rss(policy, model: str | os.PathLike | None = None, threads: int | None = 1,
                    timeout: float = 300.0) -> float | None:
    """Peak RSS in MB of a process that runs every scale of ``policy`` once (every variant open).

    ``model`` is the classifier's own model (what scales without a variant run). None where the OS
    does not report peak RSS.

    Raises
    ------
    RuntimeError
        When the process fails (one line).
    """
    from fixres_edge.footprint import measure

    with tempfile.TemporaryDirectory() as tmp:
        # Saved into the temporary folder with its variant files rewritten relative to it.
        path = policy.save(Path(tmp) / "policy.json")
        argv = [sys.executable, "-c", POLICY_SCRIPT, str(path), "-" if model is None else os.fspath(model),
                "-" if threads is None else str(int(threads))]
        run = measure(argv, timeout=timeout).check("the policy memory probe")
    return run.peak_rss_mb
