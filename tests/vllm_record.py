"""Recordings of a real vLLM's answers, kept as test data (tests/data/vllm/) so that the fake backend
can be checked against them (test_vllm_fidelity.py) without a vLLM at hand.

    python tests/vllm_record.py                      # start serve vllm (tests/vllm_env.py), record, stop
    python tests/vllm_record.py --base-url http://127.0.0.1:8001/v1

Each case is one request exactly as gridchat sends it; what is kept is what came back: the HTTP status
and either the stream's events (SSE `event:` name and parsed `data:`) or the JSON body. What a test
compares is their shape (shape() below), not the words.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

DATA = Path(__file__).parent / "data" / "vllm"
# what the client asks for (its tools and the `shell` persona of test_vllm.py make the tiny model call one)
SHELL = ('You are a shell assistant. Answer every request with one bash tool call and nothing else, for example:\n'
         '<tool_call>\n{"name": "bash", "arguments": {"command": "ls"}}\n</tool_call>')
THINKING = {"chat_template_kwargs": {"enable_thinking": True}}  # the server's qwen3 parser: all reasoning
TOO_LONG = "word " * 2500  # past the 2,048-token window


def _tools(api: str) -> list[dict]:
    from gridchat.tools import TOOLS  # the tools as the client offers them

    specs = [(t.name, t.description, t.schema()) for t in TOOLS.values()]
    if api == "chat":
        return [{"type": "function", "function": {"name": n, "description": d, "parameters": p}} for n, d, p in specs]
    return [{"type": "function", "name": n, "description": d, "parameters": p} for n, d, p in specs]


def _changed(case: tuple[str, dict], **changes) -> tuple[str, dict]:
    """A case with some fields changed (None: left out)."""
    path, body = case
    body = {**body, **changes}
    return path, {k: v for k, v in body.items() if v is not None}


def cases(model: str) -> dict[str, tuple[str, dict]]:
    """name -> (path under /v1, request body)."""
    def chat(messages, **extra):
        return "/chat/completions", {"model": model, "messages": messages, "stream": True, "temperature": 0.0,
                                     "stream_options": {"include_usage": True}, **extra}

    def responses(items, **extra):
        return "/responses", {"model": model, "input": items, "stream": True, "temperature": 0.0, **extra}

    persona = {"role": "system", "content": "Persona: lawful_evil"}
    ask = {"role": "user", "content": "Name three colours."}
    yes = {"role": "user", "content": "Answer with one word: is the sky blue?"}
    shell = [{"role": "system", "content": SHELL}, {"role": "user", "content": "List the files here."}]
    return {
        "chat-stream": chat([persona, ask], max_tokens=8),
        "chat-stream-stop": chat([yes], max_tokens=40),
        "chat-stream-no-usage": _changed(chat([yes], max_tokens=40), stream_options=None),
        "chat-tool-call": chat(shell, max_tokens=40, tools=_tools("chat"), tool_choice="required"),
        "chat-reasoning": chat([ask], max_tokens=5, **THINKING),
        "chat-context-overflow": chat([{"role": "user", "content": TOO_LONG}], max_tokens=8),
        "chat-unknown-model": _changed(chat([ask], max_tokens=8), model="no-such-model"),
        "responses-stream": responses([persona, ask], max_output_tokens=8),
        "responses-stream-stop": responses([yes], max_output_tokens=40),
        "responses-tool-call": responses(shell, max_output_tokens=40, tools=_tools("responses"),
                                         tool_choice="required"),
        "responses-reasoning": responses([ask], max_output_tokens=5, **THINKING),
        "responses-context-overflow": responses([{"role": "user", "content": TOO_LONG}], max_output_tokens=8),
        "responses-unknown-model": _changed(responses([ask], max_output_tokens=8), model="no-such-model"),
    }


def ask(base_url: str, path: str, body: dict) -> dict:
    """What the server answers: {"status", "events"} for a stream, {"status", "body"} otherwise."""
    request = urllib.request.Request(base_url + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        response = urllib.request.urlopen(request, timeout=120)
    except urllib.error.HTTPError as e:
        return {"status": e.code, "body": json.loads(e.read() or b"null")}
    with response:
        if not response.headers.get("Content-Type", "").startswith("text/event-stream"):
            return {"status": response.status, "body": json.loads(response.read())}
        events, name = [], None
        for raw in response:
            line = raw.decode("utf-8").rstrip("\r\n")
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data = line[5:].strip()
                events.append({"event": name, "data": data if data == "[DONE]" else json.loads(data)})
                name = None
        return {"status": response.status, "events": events}


# -- shapes ---------------------------------------------------------------------------------------------

KEEP = {"finish_reason", "object", "type", "role", "status", "reason", "code"}  # values that are part of a shape


def skeleton(value, key: str = ""):
    """A JSON value's shape: its keys all the way down, the values in KEEP, other values' types."""
    if isinstance(value, dict):
        return {k: skeleton(v, k) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [skeleton(value[0])] if value else []
    if key in KEEP:
        return value
    if value is None:
        return None
    return "bool" if isinstance(value, bool) else "number" if isinstance(value, (int, float)) else "str"


def shape(answer: dict) -> dict:
    """An answer's shape: the status, and the body's skeleton or the stream's events as skeletons,
    a run of events of the same skeleton counted once (a reply's length is not its shape)."""
    if "body" in answer:
        return {"status": answer["status"], "body": skeleton(answer["body"])}
    events: list = []
    for event in answer["events"]:
        this = [event["event"], skeleton(event["data"]) if event["data"] != "[DONE]" else "[DONE]"]
        if not events or events[-1] != this:
            events.append(this)
    return {"status": answer["status"], "events": events}


def differences(real, fake, where: str = "") -> list[str]:
    """Where two shapes differ (null matches any value: a field vLLM leaves null may be set here)."""
    if real is None or fake is None or real == fake:
        return []
    if isinstance(real, dict) and isinstance(fake, dict):
        out = [f"{where}.{k}: only in vLLM's" for k in real.keys() - fake.keys()]
        out += [f"{where}.{k}: only in the fake's" for k in fake.keys() - real.keys()]
        for k in real.keys() & fake.keys():
            out += differences(real[k], fake[k], f"{where}.{k}")
        return out
    if isinstance(real, list) and isinstance(fake, list) and len(real) == len(fake):
        return [d for i, (r, f) in enumerate(zip(real, fake)) for d in differences(r, f, f"{where}[{i}]")]
    return [f"{where}: vLLM's {json.dumps(real)[:300]} / the fake's {json.dumps(fake)[:300]}"]


def load(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text())


def record(base_url: str, model: str) -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    version = json.load(urllib.request.urlopen(base_url.removesuffix("/v1") + "/version", timeout=10))["version"]
    for name, (path, body) in cases(model).items():
        answer = ask(base_url, path, body)
        kept = {"vllm": version, "request": {"path": path, "body": body}, **answer}
        (DATA / f"{name}.json").write_text(json.dumps(kept, indent=1, ensure_ascii=False) + "\n")
        print(f"{name}: {answer['status']}, {len(answer.get('events', []))} events", file=sys.stderr)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Record a real vLLM's answers into tests/data/vllm/")
    parser.add_argument("--base-url", help="a running vLLM started as tests/vllm_env.py starts it")
    args = parser.parse_args(argv)
    if args.base_url:
        models = json.load(urllib.request.urlopen(args.base_url + "/models", timeout=10))["data"]
        record(args.base_url, models[0]["id"])
        return 0
    from gridchat.serve.local import free_port
    from vllm_env import Server, missing

    if missing():
        print(f"vllm_record: {missing()}", file=sys.stderr)
        return 1
    server = Server(Path(tempfile.mkdtemp()) / "serve.log", free_port())
    try:
        server.wait_ready()
        record(server.base_url, server.model)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
