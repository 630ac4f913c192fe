"""`tokenmill generate` and `tokenmill serve`: their options, and running them. Nothing heavy (torch,
FastAPI) is imported until one runs, so the CLI stays quick to start."""

from __future__ import annotations

import sys
from pathlib import Path

from tokenmill.errors import UserError

MODEL_HELP = "model directory, .ckpt checkpoint, MLflow run id, runs:/ID or models:/NAME@ALIAS"


def add_generate_arguments(p) -> None:
    """Sampling options default from params.yaml's evaluate section."""
    p.add_argument("--model", help=f"{MODEL_HELP} (default: paths.model)")
    p.add_argument("--prompt", required=True, help="text to continue (encoded as BOS + the text)")
    p.add_argument("--max-new-tokens", type=int, help="tokens to generate at most (default: evaluate.max_new_tokens)")
    p.add_argument("--temperature", type=float, help="0: greedy (default: evaluate.temperature)")
    p.add_argument("--top-k", type=int, help="sample among the k most likely tokens; 0: all (default: evaluate.top_k)")
    p.add_argument("--top-p", type=float, help="nucleus sampling; 1: all (default: evaluate.top_p)")
    p.add_argument("--seed", type=int, help="random seed (default: evaluate.seed)")
    p.add_argument("--stop", action="append", default=[], help="end the text at this string (repeatable)")


def run_generate(args, params) -> None:
    """Print the continuation of --prompt on stdout as it is generated."""
    from training.generate import SamplingParams, stream_text

    config = params.evaluate
    given = lambda value, default: default if value is None else value  # noqa: E731
    try:
        sampling = SamplingParams(
            max_new_tokens=given(args.max_new_tokens, config.max_new_tokens),
            temperature=given(args.temperature, config.temperature), top_k=given(args.top_k, config.top_k) or None,
            top_p=given(args.top_p, config.top_p), seed=given(args.seed, config.seed), stop=tuple(args.stop))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    lm = _load(args.model or params.paths.model, params)
    prompt = lm.encode_prompt(args.prompt)[-lm.block_size:]
    for piece in stream_text(lm, prompt, sampling, lm.end_ids()):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")


def add_serve_arguments(p) -> None:
    p.add_argument("--model", help=f"{MODEL_HELP} (default: models:/<tracking.registered_model>@champion)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("--max-batch", type=int, default=8, help="requests decoded together (default: 8)")
    p.add_argument("--max-tokens", type=int, default=512, help="most tokens a request may generate (default: 512)")
    p.add_argument("--max-prompt-tokens", type=int, help="longest prompt in tokens (default: block_size - 1)")


def run_serve(args, params) -> None:
    """Serve the model over HTTP until interrupted."""
    import uvicorn

    from training.serve import Limits, make_app

    if args.max_batch < 1 or args.max_tokens < 1 or (args.max_prompt_tokens is not None and args.max_prompt_tokens < 1):
        raise UserError("--max-batch, --max-tokens and --max-prompt-tokens must be positive")
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port}: not a port number")
    lm = _load(args.model or f"models:/{params.tracking.registered_model}@champion", params)
    limits = Limits(max_batch=args.max_batch, max_tokens=args.max_tokens, max_prompt_tokens=args.max_prompt_tokens)
    print(f"tokenmill serve: {lm.name} on http://{args.host}:{args.port}/ (OpenAI API under /v1)", file=sys.stderr)
    uvicorn.run(make_app(lm, limits), host=args.host, port=args.port, log_level="warning")


def _load(spec: str, params):
    from training.evaluate import pick_device
    from training.language_model import load_language_model

    return load_language_model(spec, params.tracking, Path(params.paths.tokens) / "tokenizer.json",
                               pick_device(params.evaluate.device))
