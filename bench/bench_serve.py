"""Load test of the reward service on loopback: many concurrent clients, micro-batching on and off, in one run.

Each of C clients sends R requests of one record (the shape of an RL loop asking for rewards as rollouts finish)
to a real ``uvicorn`` server on 127.0.0.1. For each mode: records/s, scoring calls made, lost requests, and the
largest difference from scoring the same records with ``flr score``'s scorer alone.

    PYTHONPATH=src python bench/bench_serve.py                      # docs/PERFORMANCE.md, "Reward service"
    PYTHONPATH=src python bench/bench_serve.py --clients 32 --requests 2 --model default

Results go to bench/results/serve_cpu_<model>.json and a table is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

from flr.eval.benchmarks import benchmark_records  # noqa: E402
from flr.kernel.models import load_model, model_name  # noqa: E402
from flr.scorers import FollowUpReward, ScorerConfig  # noqa: E402
from flr.serving.service import ServiceLimits, create_app  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(app, port: int):
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread


async def clients(port: int, work: list[list[dict]]) -> list:
    import httpx

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:

        async def one(requests):
            out = []
            for records in requests:
                reply = await client.post("/score", json={"records": records})
                out.append(reply.json()["rewards"] if reply.status_code == 200 else None)
            return out

        return await asyncio.gather(*(one(r) for r in work))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=2, help="sequential one-record requests per client")
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    model, tok = load_model(args.model, device="cpu")
    scorer = FollowUpReward(model, tok, ScorerConfig(max_length=args.max_length), model_name=model_name(args.model))
    n = args.clients * args.requests
    _, pairs = benchmark_records("autoj", limit=(n + 1) // 2)
    records = [{"prompt": p["prompt"], "response": p[s]} for p in pairs for s in ("chosen", "rejected")][:n]
    work = [[[records[c * args.requests + i]] for i in range(args.requests)] for c in range(args.clients)]
    alone = [r.reward for r in scorer.score(records)]
    rows = []
    for micro in (False, True):
        app = create_app(scorer, limits=ServiceLimits(micro_batch="on" if micro else "off", max_record_chars=10**6))
        port = free_port()
        server, thread = serve(app, port)
        start = time.perf_counter()
        got = asyncio.run(clients(port, work))
        seconds = time.perf_counter() - start
        calls = app.state.service.scheduler.calls
        server.should_exit = True
        thread.join()
        flat = [v[0] if v else None for client in got for v in client]
        lost = sum(v is None for v in flat)
        diff = max(abs(a - b) for a, b in zip(flat, alone) if a is not None)
        rows.append(
            {
                "micro_batch": micro,
                "seconds": seconds,
                "records_per_s": n / seconds,
                "scoring_calls": calls,
                "lost": lost,
                "max_abs_diff_vs_alone": diff,
            }
        )
        print(f"micro_batch={micro}: {n / seconds:.2f} records/s, {calls} calls, {lost} lost, |diff| {diff:.1e}")
    result = {
        "bench": "serve",
        "model": model_name(args.model),
        "clients": args.clients,
        "requests_per_client": args.requests,
        "rows": rows,
        "speedup": rows[1]["records_per_s"] / rows[0]["records_per_s"],
    }
    out = C.save_result(result, args.out or C.RESULTS_DIR / f"serve_cpu_{model_name(args.model).lower()}.json")
    print(f"micro-batching: {result['speedup']:.2f}x records/s -> {out}")


if __name__ == "__main__":
    main()
