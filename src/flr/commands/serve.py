"""``flr serve``: FLR as an HTTP reward service."""

from __future__ import annotations

from dataclasses import dataclass, field

from flr.commands._common import add_command, to_configs
from flr.models import ModelConfig, model_name
from flr.scorers import FLRConfig, build_scorer


@dataclass
class ServeConfig:
    scorer: str = field(default="flr", metadata={"help": "flr, direct, length or rm:<model>."})
    host: str = field(default="127.0.0.1", metadata={"help": "Address to listen on."})
    port: int = field(default=8000, metadata={"help": "Port to listen on."})


def make_parser(subparsers):
    parser = add_command(
        subparsers,
        "serve",
        help="Serve a scorer over HTTP (POST /score) for online RL.",
        description="Load the scorer once and serve POST /score {records: [{prompt, response}]} -> rewards, and "
        "GET /health. Needs pip install 'flr[serve]'. For TRL trainers in the same process, use "
        "flr.rl.FLRRewardFunction instead.",
        dataclasses_=(ServeConfig, FLRConfig, ModelConfig),
    )
    parser.set_defaults(func=main)
    return parser


def main(args) -> int:
    config, flr_config, model_config = to_configs(args, ServeConfig, FLRConfig, ModelConfig)
    from flr.errors import FLRError
    from flr.serve import create_app

    try:
        import uvicorn
    except ImportError as exc:
        raise FLRError("flr serve needs uvicorn: pip install 'flr[serve]'") from exc
    scorer = build_scorer(
        config.scorer, model_config=model_config, config=flr_config, model_name=model_name(model_config.model)
    )
    uvicorn.run(create_app(scorer), host=config.host, port=config.port)
    return 0
