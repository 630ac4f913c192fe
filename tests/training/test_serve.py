"""The OpenAI-compatible server (training/serve.py), driven by the official `openai` client over 127.0.0.1."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import mlflow
import mlflow.pyfunc
import openai
import pytest
import torch
import uvicorn
import yaml

from training import tracking as mlf
from training.config import EvalConfig, TrackingConfig
from training.evaluate import evaluate
from training.generate import generate
from training.language_model import PLAIN_STOP, load_language_model
from training.serve import Limits, make_app

PROMPTS = ["The river runs through", "این شهر", "Biblioteka w Łodzi"]


class RunningServer:
    """uvicorn serving `app` on a free loopback port, on a thread, until stopped."""

    def __init__(self, app):
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.socket.close()


@pytest.fixture(scope="module")
def lm(gpt_dir):
    return load_language_model(gpt_dir, TrackingConfig(enabled=False))


@pytest.fixture(scope="module")
def server(lm):
    app = make_app(lm, Limits(max_batch=4, max_tokens=24))
    with RunningServer(app) as running:
        running.app = app
        yield running


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60)


def greedy(lm, ids: list[int], n: int, ends: set[int]) -> str:
    """What the model itself continues `ids` with, greedily, up to the first end token."""
    row = generate(lm.model, torch.tensor([ids]), n, temperature=0)[0, len(ids):].tolist()
    cut = min([row.index(e) for e in ends if e in row], default=len(row))
    return lm.decode(row[:cut])


def test_completions_plain_and_streamed_give_the_models_own_greedy_text(client, lm):
    model = client.models.list().data[0].id
    assert model == lm.name
    done = client.completions.create(model=model, prompt=PROMPTS[2], max_tokens=10, temperature=0)
    assert done.choices[0].text == greedy(lm, lm.encode_prompt(PROMPTS[2]), 10, lm.end_ids())
    assert done.choices[0].finish_reason in ("stop", "length") and done.usage.prompt_tokens == len(
        lm.encode_prompt(PROMPTS[2]))
    chunks = list(client.completions.create(model=model, prompt=PROMPTS[2], max_tokens=10, temperature=0,
                                            stream=True))
    assert "".join(c.choices[0].text for c in chunks) == done.choices[0].text
    assert chunks[-1].choices[0].finish_reason == done.choices[0].finish_reason

    several = client.completions.create(model=model, prompt=PROMPTS, max_tokens=6, temperature=0)
    assert [c.text for c in sorted(several.choices, key=lambda c: c.index)] == [
        greedy(lm, lm.encode_prompt(p), 6, lm.end_ids()) for p in PROMPTS]

    sampled = [client.completions.create(model=model, prompt=PROMPTS[0], max_tokens=8, temperature=1.0,
                                         top_p=0.9, seed=5, extra_body={"top_k": 20}).choices[0].text for _ in "ab"]
    assert sampled[0] == sampled[1]  # the same seed draws the same text


def test_a_stop_string_ends_the_text_before_it(client, lm):
    model = client.models.list().data[0].id
    full = client.completions.create(model=model, prompt=PROMPTS[0], max_tokens=16, temperature=0).choices[0].text
    stop = full[len(full) // 2: len(full) // 2 + 2]
    cut = client.completions.create(model=model, prompt=PROMPTS[0], max_tokens=16, temperature=0, stop=[stop])
    assert cut.choices[0].text == full[: full.index(stop)] and cut.choices[0].finish_reason == "stop"


def test_chat_plain_and_streamed_use_the_plain_template(client, lm):
    messages = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Zażółć gęślą jaźń"}]
    model = client.models.list().data[0].id
    answer = client.chat.completions.create(model=model, messages=messages, max_tokens=12, temperature=0)
    ids = lm.encode_prompt("System: Answer briefly.\nUser: Zażółć gęślą jaźń\nAssistant:")
    expected = greedy(lm, ids, 12, lm.end_ids(chat=True)).split(PLAIN_STOP[0])[0]
    assert answer.choices[0].message.role == "assistant" and answer.choices[0].message.content == expected
    stream = client.chat.completions.create(model=model, messages=messages, max_tokens=12, temperature=0,
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected
    assert chunks[-1].usage.total_tokens == len(ids) + chunks[-1].usage.completion_tokens


def test_two_concurrent_clients_are_batched_and_each_gets_its_own_answer(lm):
    app = make_app(lm, Limits(max_batch=2, batch_wait_s=5.0))  # a batch starts once both have arrived
    clients, ready = [], threading.Barrier(2)

    def ask(prompt):
        ready.wait()
        return clients[0].completions.create(model=lm.name, prompt=prompt, max_tokens=8,
                                             temperature=0).choices[0].text

    with RunningServer(app) as server, ThreadPoolExecutor(2) as pool:
        clients.append(openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60))
        answers = list(pool.map(ask, PROMPTS[:2]))
    assert answers == [greedy(lm, lm.encode_prompt(p), 8, lm.end_ids()) for p in PROMPTS[:2]]
    assert app.state.server.engine.batch_sizes == {2: 1}  # decoded together, in one batch of two


def test_bad_requests_get_4xx_in_openais_error_shape(client, server, lm):
    model = client.models.list().data[0].id
    for kwargs, error in [(dict(temperature=5), openai.BadRequestError), (dict(n=2), openai.BadRequestError),
                          (dict(max_tokens=10_000), openai.BadRequestError),
                          (dict(prompt="word " * 400), openai.BadRequestError),
                          (dict(stop=["a", "b", "c", "d", "e"]), openai.BadRequestError),
                          (dict(model="gpt-4"), openai.NotFoundError)]:
        with pytest.raises(error) as caught:
            client.completions.create(**{"model": model, "prompt": "The river", "max_tokens": 4, **kwargs})
        assert set(caught.value.body) >= {"message", "type", "param", "code"}, kwargs
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=model, messages=[{"role": "wizard", "content": "hi"}])
    assert "messages" in caught.value.body["param"]
    raw = httpx.post(server.url + "/v1/completions", content=b"{not json", headers={"Content-Type": "application/json"})
    assert raw.status_code == 400 and raw.json()["error"]["type"] == "invalid_request_error"
    missing = httpx.get(server.url + "/v1/nothing-here")
    assert missing.status_code == 404 and "message" in missing.json()["error"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, process: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1][-6000:]
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} did not answer in {timeout} s")


@contextmanager
def _serving(command: list[str], url: str, env: dict, cwd):
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)  # its own group: its workers stop with it
    try:
        _wait_for(url, process)
        yield
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)


@pytest.mark.slow
def test_the_registered_champion_serves_through_mlflow_models_serve_and_tokenmill_serve(gpt_dir, tokens, tracking,
                                                                                        tmp_path):
    """The champion alias of a model the evaluate stage registered: `mlflow models serve` answers
    /invocations as the pyfunc does, and `tokenmill serve` serves it by default."""
    tracking = TrackingConfig(**{**tracking.__dict__, "registered_model": f"gpt-{tracking.experiment}"})
    model = shutil.copytree(gpt_dir, tmp_path / "model")
    run_id = mlf.start_run(tracking, "served")
    (model / "run.json").write_text(json.dumps({"run_id": run_id}))
    for name in ("model.pt", "tokenizer.json"):  # as training logs them: models:/ resolves to these
        mlf.client(tracking).log_artifact(run_id, str(model / name))
    evaluate(model, tokens, tmp_path / "metrics.json", EvalConfig(max_tokens=2000, samples=0), tracking)
    champion = f"models:/{tracking.registered_model}@champion"
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking.tracking_uri,  # and the venv's commands (uvicorn) on PATH
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    body = {"inputs": ["The river runs through", "این شهر"], "params": {"max_new_tokens": 8, "temperature": 0.0}}
    mlflow.set_tracking_uri(tracking.tracking_uri)
    expected = mlflow.pyfunc.load_model(champion).predict(body["inputs"], params=body["params"])

    port = _free_port()
    with _serving([sys.executable, "-m", "mlflow", "models", "serve", "-m", champion, "--env-manager", "local",
                   "-h", "127.0.0.1", "-p", str(port)], f"http://127.0.0.1:{port}/ping", env, tmp_path):
        answer = httpx.post(f"http://127.0.0.1:{port}/invocations", json=body, timeout=60)
    assert answer.status_code == 200 and answer.json()["predictions"] == expected

    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"tracking": tracking.__dict__}))
    port = _free_port()
    with _serving([sys.executable, "-m", "pipeline.cli", "serve", "--port", str(port)],
                  f"http://127.0.0.1:{port}/v1/models", env, tmp_path):
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
        assert client.models.list().data[0].id == champion
        assert client.completions.create(model=champion, prompt="Historia", max_tokens=4).choices[0].text


def test_a_fine_tuned_model_chats_through_its_own_template(lm):
    from training.finetune.template import END, ChatTemplate, add_chat_tokens, resize_vocab
    from training.language_model import LanguageModel

    tokenizer, _ = add_chat_tokens(lm.tokenizer)
    chat_lm = LanguageModel(resize_vocab(lm.model, tokenizer.get_vocab_size()).eval(), tokenizer, "chat")
    messages = [{"role": "user", "content": "Biblioteka w Łodzi"}]
    ids = chat_lm.encode_chat(messages)
    assert ids == ChatTemplate(tokenizer).prompt(messages) and tokenizer.token_to_id(END) in chat_lm.end_ids(chat=True)
    with RunningServer(make_app(chat_lm, Limits(max_tokens=12))) as server:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60)
        answer = client.chat.completions.create(model="chat", messages=messages, max_tokens=12, temperature=0)
    assert answer.choices[0].message.content == greedy(chat_lm, ids, 12, chat_lm.end_ids(chat=True))
