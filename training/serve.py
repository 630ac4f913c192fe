"""An OpenAI-compatible HTTP server for a trained model, and a chat page.

  GET  /                      the chat page (training/static/chat.html)
  GET  /v1/models             the one model served
  POST /v1/completions        prompt (a string or a list of them) -> continuation(s)
  POST /v1/chat/completions   messages -> the assistant's answer (training/language_model.py: templates)

Both POST routes take model, max_tokens, temperature (0: greedy), top_p, top_k (not in OpenAI's API;
0 or absent: every token), stop (a string or up to 4), seed, stream (server-sent events, ending with
`data: [DONE]`) and stream_options.include_usage. `n` other than 1, logprobs, tools and the like are
refused (400), never ignored silently.

Requests are batched: a loop on its own thread takes the waiting requests (up to `max_batch`; a
request gathers its companions for at most `batch_wait_s`) and decodes them together with the KV cache
(training/generate.py's BatchDecoder); a request that arrives while a batch runs waits for the next.
A prompt longer than `max_prompt_tokens`, or max_tokens above `max_tokens`, is a 400; the answer ends
("length") at either the request's max_tokens or the model's block_size. Errors have OpenAI's shape,
{"error": {"message", "type", "param", "code"}}: 4xx for a request's mistake, 500 only for a fault here.
"""

from __future__ import annotations

import asyncio
import json
import queue
import sys
import threading
import time
import uuid
from collections import Counter
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from training.generate import BatchDecoder, SamplingParams, TextStream
from training.language_model import LanguageModel

CHAT_PAGE = Path(__file__).with_name("static") / "chat.html"


@dataclass(frozen=True)
class Limits:
    max_batch: int = 8  # requests decoded together
    max_tokens: int = 512  # most tokens a request may ask for
    max_prompt_tokens: int | None = None  # None: block_size - 1
    max_waiting: int = 64  # requests queued beyond it get a 429
    batch_wait_s: float = 0.005  # how long a request waits for companions to batch with


class ApiError(Exception):
    """A request the server refuses: OpenAI's error shape with an HTTP status."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind


def error_response(status: int, message: str, param: str | None = None, code: str | None = None,
                   kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}}, status)


# --- the batching loop ----------------------------------------------------------------------------

@dataclass
class Job:
    """One sequence to generate; its events go to `events` (on the request's event loop):
    ("text", index, piece), then ("end", index, finish_reason, completion_tokens) or ("error", index, message)."""

    prompt: list[int]
    params: SamplingParams
    ends: set[int]
    events: asyncio.Queue
    loop: asyncio.AbstractEventLoop
    index: int = 0
    cancelled: bool = False
    tokens: int = 0

    def emit(self, *event) -> None:
        self.loop.call_soon_threadsafe(self.events.put_nowait, (event[0], self.index, *event[1:]))


@dataclass
class Engine:
    """Decodes waiting jobs in batches on one thread (torch runs there, not on the event loop)."""

    lm: LanguageModel
    limits: Limits
    waiting: queue.Queue = field(default_factory=queue.Queue)
    stopping: threading.Event = field(default_factory=threading.Event)
    batch_sizes: Counter = field(default_factory=Counter)  # batches decoded, by their number of jobs

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._loop, name="tokenmill-batcher", daemon=True)
        thread.start()
        return thread

    def submit(self, jobs: list[Job]) -> None:
        if self.waiting.qsize() + len(jobs) > self.limits.max_waiting:
            raise ApiError(429, f"too many requests waiting (over {self.limits.max_waiting}); retry later",
                           code="rate_limit_exceeded", kind="rate_limit_error")
        for job in jobs:
            self.waiting.put(job)

    def _loop(self) -> None:
        while not self.stopping.is_set():
            batch = self._take()
            if batch:
                self.batch_sizes[len(batch)] += 1
                self._run(batch)

    def _take(self) -> list[Job]:
        try:
            batch = [self.waiting.get(timeout=0.1)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + self.limits.batch_wait_s
        while len(batch) < self.limits.max_batch:
            try:
                batch.append(self.waiting.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return [job for job in batch if not job.cancelled]

    def _run(self, batch: list[Job]) -> None:
        streams = [TextStream(self.lm.decode, job.params.stop) for job in batch]
        try:
            decoder = BatchDecoder(self.lm.model, [job.prompt for job in batch], [job.params for job in batch],
                                   self.lm.pad or 0)
            while not decoder.done:
                for row, token in decoder.step().items():
                    reason = self._advance(batch[row], streams[row], token)
                    if reason is not None:
                        decoder.finish(row)
                        batch[row].emit("end", reason, batch[row].tokens)
                for row in [r for r in decoder.active if batch[r].cancelled]:
                    decoder.finish(row)
        except Exception as exc:  # a fault here: every job still running gets it, the loop goes on
            print(f"tokenmill serve: generation failed: {exc!r}", file=sys.stderr)
            for job in batch:
                job.emit("error", f"generation failed: {exc}")

    def _advance(self, job: Job, stream: TextStream, token: int) -> str | None:
        """Feed one drawn token to its job; the finish reason once the job is done."""
        if token in job.ends:
            reason = "stop"
        else:
            job.tokens += 1
            piece = stream.push(token)
            if piece:
                job.emit("text", piece)
            reason = "stop" if stream.stopped else None
            if reason is None and (job.tokens >= job.params.max_new_tokens
                                   or len(job.prompt) + job.tokens >= self.lm.block_size):
                reason = "length"
        if reason is not None and not stream.stopped:
            rest = stream.flush()
            if rest:
                job.emit("text", rest)
        return reason


# --- requests ---------------------------------------------------------------------------------------

class SamplingRequest(BaseModel):
    model: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: dict | None = None
    n: int = Field(1, ge=1, le=1, description="only 1")
    logprobs: None = None
    echo: Literal[False] = False
    tools: None = None


class CompletionRequest(SamplingRequest):
    prompt: str | list[str] = Field(min_length=1)
    max_tokens: int | None = Field(16, ge=1)  # OpenAI's default for completions


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str | list[dict]


class ChatRequest(SamplingRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool | None = None


@dataclass
class Server:
    lm: LanguageModel
    limits: Limits
    engine: Engine

    @property
    def model_id(self) -> str:
        return self.lm.name

    def check_model(self, model: str | None) -> None:
        if model is not None and model != self.model_id:
            raise ApiError(404, f"The model `{model}` does not exist; this server has `{self.model_id}`",
                           "model", "model_not_found")

    def sampling(self, request: SamplingRequest, max_tokens: int | None, stop: tuple[str, ...] = ()) -> SamplingParams:
        requested = max_tokens if max_tokens is not None else self.limits.max_tokens
        if requested > self.limits.max_tokens:
            raise ApiError(400, f"max_tokens is {requested}; this server allows at most {self.limits.max_tokens}",
                           "max_tokens", "invalid_value")
        stops = [request.stop] if isinstance(request.stop, str) else list(request.stop or [])
        if len(stops) > 4 or any(not s for s in stops):
            raise ApiError(400, "stop: up to 4 non-empty strings", "stop", "invalid_value")
        return SamplingParams(max_new_tokens=requested, temperature=request.temperature, top_k=request.top_k or None,
                              top_p=request.top_p if request.top_p < 1 else None, seed=request.seed,
                              stop=tuple(stops) + stop)

    def check_prompt(self, ids: list[int], param: str) -> list[int]:
        most = self.limits.max_prompt_tokens or self.lm.block_size - 1
        most = min(most, self.lm.block_size - 1)
        if len(ids) > most:
            raise ApiError(400, f"the prompt is {len(ids)} tokens; this model takes at most {most}", param,
                           "context_length_exceeded")
        return ids

    def jobs(self, prompts: list[list[int]], params: SamplingParams, ends: set[int]) -> tuple[list[Job], asyncio.Queue]:
        events: asyncio.Queue = asyncio.Queue()
        loop = asyncio.get_running_loop()
        jobs = [Job(p, params, ends, events, loop, index=i) for i, p in enumerate(prompts)]
        self.engine.submit(jobs)
        return jobs, events


def chat_text(message: ChatMessage) -> str:
    """A message's text: a string, or the text parts of a list (OpenAI's content parts)."""
    if isinstance(message.content, str):
        return message.content
    if any(part.get("type") != "text" or not isinstance(part.get("text"), str) for part in message.content):
        raise ApiError(400, "only text content parts ({\"type\": \"text\", \"text\": ...}) are supported",
                       "messages", "invalid_value")
    return "".join(part["text"] for part in message.content)


async def job_events(jobs: list[Job], events: asyncio.Queue):
    """Every job's events until each has ended; a disconnected client cancels its jobs."""
    running = len(jobs)
    try:
        while running:
            event = await events.get()
            if event[0] == "error":
                raise ApiError(500, event[2], code="server_error", kind="server_error")
            running -= event[0] == "end"
            yield event
    finally:
        for job in jobs:
            job.cancelled = True


async def collect(jobs: list[Job], events: asyncio.Queue) -> list[tuple[str, str]]:
    """(text, finish_reason) of each job."""
    texts, reasons = [""] * len(jobs), [""] * len(jobs)
    async for event in job_events(jobs, events):
        if event[0] == "text":
            texts[event[1]] += event[2]
        else:
            reasons[event[1]] = event[2]
    return list(zip(texts, reasons))


def usage(jobs: list[Job]) -> dict:
    prompt, completion = sum(len(j.prompt) for j in jobs), sum(j.tokens for j in jobs)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def sse(chunks):
    """Server-sent events of JSON chunks, ending with [DONE]; an error mid-stream is sent as one."""
    async def events():
        try:
            async for chunk in chunks:
                yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"
        except ApiError as exc:
            yield f"data: {json.dumps({'error': {'message': exc.message, 'type': exc.kind, 'code': exc.code}})}\n\n"
        yield "data: [DONE]\n\n"
    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


# --- the app ----------------------------------------------------------------------------------------

def make_app(lm: LanguageModel, limits: Limits = Limits()) -> FastAPI:
    """The FastAPI app serving `lm`; its batching thread runs while the app does."""
    server = Server(lm, limits, Engine(lm, limits))

    @asynccontextmanager
    async def lifespan(app):
        thread = server.engine.start()
        yield
        server.engine.stopping.set()
        thread.join(timeout=5)

    app = FastAPI(title="tokenmill", lifespan=lifespan)
    app.state.server = server
    add_error_handlers(app)

    @app.get("/", include_in_schema=False)
    async def chat_page():
        return HTMLResponse(CHAT_PAGE.read_text(encoding="utf-8"))

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": server.model_id, "object": "model", "created": 0,
                                            "owned_by": "tokenmill"}]}

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest):
        return await complete(server, body)

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatRequest):
        return await chat(server, body)

    return app


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        return error_response(exc.status, exc.message, exc.param, exc.code, exc.kind)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        first = exc.errors()[0]
        where = [str(p) for p in first.get("loc", ()) if p != "body"]
        param = ".".join(where) or None
        return error_response(400, f"{param or 'body'}: {first.get('msg', 'invalid')}", param, "invalid_value")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return error_response(exc.status_code, str(exc.detail), code=None if exc.status_code != 404 else "not_found")


async def complete(server: Server, body: CompletionRequest):
    server.check_model(body.model)
    prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
    if not prompts or len(prompts) > server.limits.max_batch:
        raise ApiError(400, f"prompt: 1 to {server.limits.max_batch} prompts", "prompt", "invalid_value")
    params = server.sampling(body, body.max_tokens)
    ids = [server.check_prompt(server.lm.encode_prompt(p), "prompt") for p in prompts]
    jobs, events = server.jobs(ids, params, server.lm.end_ids())
    head = {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
            "model": server.model_id}
    if body.stream:
        return sse(completion_chunks(head, jobs, events, _include_usage(body)))
    results = await collect(jobs, events)
    return {**head, "choices": [{"index": i, "text": text, "logprobs": None, "finish_reason": reason}
                                for i, (text, reason) in enumerate(results)], "usage": usage(jobs)}


async def completion_chunks(head: dict, jobs: list[Job], events: asyncio.Queue, include_usage: bool):
    async for event in job_events(jobs, events):
        text, reason = (event[2], None) if event[0] == "text" else ("", event[2])
        yield {**head, "choices": [{"index": event[1], "text": text, "logprobs": None, "finish_reason": reason}]}
    if include_usage:
        yield {**head, "choices": [], "usage": usage(jobs)}


async def chat(server: Server, body: ChatRequest):
    server.check_model(body.model)
    if body.logprobs:
        raise ApiError(400, "logprobs are not supported", "logprobs", "invalid_value")
    messages = [{"role": m.role, "content": chat_text(m)} for m in body.messages]
    params = server.sampling(body, body.max_completion_tokens or body.max_tokens, server.lm.chat_stop())
    ids = server.check_prompt(server.lm.encode_chat(messages), "messages")
    jobs, events = server.jobs([ids], params, server.lm.end_ids(chat=True))
    head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": server.model_id}
    if body.stream:
        return sse(chat_chunks({**head, "object": "chat.completion.chunk"}, jobs, events, _include_usage(body)))
    (text, reason), = await collect(jobs, events)
    return {**head, "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                 "logprobs": None, "finish_reason": reason}], "usage": usage(jobs)}


async def chat_chunks(head: dict, jobs: list[Job], events: asyncio.Queue, include_usage: bool):
    yield {**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
    async for event in job_events(jobs, events):
        delta, reason = ({"content": event[2]}, None) if event[0] == "text" else ({}, event[2])
        yield {**head, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}]}
    if include_usage:
        yield {**head, "choices": [], "usage": usage(jobs)}


def _include_usage(body: SamplingRequest) -> bool:
    return bool((body.stream_options or {}).get("include_usage"))
