"""``flr serve``: FLR as an HTTP reward service."""

from __future__ import annotations

from dataclasses import dataclass, field

from flr.commands._common import add_command, add_dataclasses, check_scorer_settings, to_configs


@dataclass
class ServeConfig:
    scorer: str = field(default="flr", metadata={"help": "flr, direct, length or rm:<model>."})
    host: str = field(default="127.0.0.1", metadata={"help": "Address to listen on."})
    port: int = field(default=8000, metadata={"help": "Port to listen on."})
    query_template: str = field(
        default="chatml",
        metadata={
            "help": "How POST /get_reward (OpenRLHF) splits full query texts into turns: chatml or llama3 "
            "(the policy's template; the scorer renders with its own).",
            "choices": ["chatml", "llama3"],
        },
    )
    api_key: str | None = field(
        default=None,
        metadata={
            "help": "Bearer token clients must send (Authorization: Bearer KEY); default $FLR_API_KEY. Required "
            "when --host is not a loopback address."
        },
    )
    shutdown_timeout: float = field(
        default=10.0,
        metadata={
            "help": "Seconds from SIGTERM to exit: new and queued requests get 503 at once, the running model call "
            "may finish within this time, then the process exits regardless."
        },
    )


def make_parser(subparsers):
    parser = add_command(
        subparsers,
        "serve",
        help="Serve a scorer over HTTP (POST /score) for online RL.",
        description="Load the scorer once and serve POST /score {records: [{prompt, response}]} -> rewards, "
        "POST /get_reward {query: [texts], prompts: [texts]} -> {rewards} (OpenRLHF's --remote_rm_url API), and "
        "GET /health (liveness) and /ready (readiness), both without the token, and GET /info (scorer, limits, queue). A "
        "request that cannot finish within --request-timeout is refused at once with 503 and Retry-After. Needs pip install 'flr[serve]'. For TRL trainers in the same process, use "
        "flr.rl.FLRRewardFunction instead.",
        build=build,
    )
    parser.set_defaults(func=main)
    return parser


def build(parser) -> None:
    from flr.kernel.models import ModelConfig
    from flr.scorers import ScorerConfig
    from flr.serving.service import ServiceLimits

    add_dataclasses(parser, ServeConfig, ServiceLimits, ScorerConfig, ModelConfig)
    parser.epilog = """examples:
  flr serve --port 8000                                            # loopback only, no token needed
  FLR_API_KEY=secret flr serve --host 0.0.0.0 --model default-tuned --max-records 64
  curl -s localhost:8000/score -H 'Content-Type: application/json' \\
       -d '{"records": [{"prompt": "Hi!", "response": "Hello! How can I help?"}]}'
"""


def main(args) -> int:
    import os

    from flr.kernel.models import ModelConfig, model_name
    from flr.scorers import ScorerConfig, build_scorer
    from flr.serving.service import ServiceLimits

    config, limits, flr_config, model_config = to_configs(args, ServeConfig, ServiceLimits, ScorerConfig, ModelConfig)
    from flr.errors import FLRError
    from flr.serving.service import create_app, is_loopback

    api_key = config.api_key or os.environ.get("FLR_API_KEY") or None
    if api_key is None and not is_loopback(config.host):
        raise FLRError(f"--host {config.host} is reachable from other machines: set --api-key or $FLR_API_KEY")
    try:
        import uvicorn  # noqa: F401 - checked before the model is loaded
    except ImportError as exc:
        raise FLRError("flr serve needs uvicorn: pip install 'flr[serve]'") from exc
    check_scorer_settings(config.scorer, flr_config)
    scorer = build_scorer(
        config.scorer, model_config=model_config, config=flr_config, model_name=model_name(model_config.model)
    )
    if config.shutdown_timeout <= 0:
        raise FLRError(f"--shutdown-timeout must be positive, got {config.shutdown_timeout}")
    from flr.serving.app import serve

    app = create_app(scorer, limits=limits, api_key=api_key, query_template=config.query_template)
    serve(app, config.host, config.port, config.shutdown_timeout)
    return 0
