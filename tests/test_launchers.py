"""The launchers, run for real: launch.bat under Wine's cmd with stub programs, launch.sh's install stamp on a Mac's
tools. Every stub records the command line it was given, so the tests read what the launcher would have run."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.config import studio_cache

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ("requirements.txt", "requirements-test.txt")
CACHE = studio_cache()
WINE = next((path for path in ("/usr/lib/wine/wine64", shutil.which("wine64"), shutil.which("wine"))
             if path and os.access(path, os.X_OK)), None)
needs_wine = pytest.mark.skipif(WINE is None, reason="no Wine (/usr/lib/wine/wine64 or wine64 on the PATH): "
                                                     "run tools/install_test_wine.sh")

# What launch.bat runs, as the tests read it: "venv-python" is .venv\Scripts\python.exe.
PIP = "venv-python -m pip install --disable-pip-version-check"
PIP_UPGRADE = f"{PIP} -q --upgrade pip"


def cuda_torch(version: str, index: str) -> str:
    return (f"{PIP} --force-reinstall --no-deps torch=={version} torchaudio=={version} "
            f"--index-url https://download.pytorch.org/whl/{index}")


CUDA_12_4, CUDA_12_8 = cuda_torch("2.6.0", "cu124"), cuda_torch("2.7.1", "cu128")


def windows_path(path: Path) -> str:
    """The path as Wine's programs see it: its drive Z: is the Unix root."""
    return "Z:" + str(path).replace("/", "\\")


def windows_argv(command_line: str) -> list[str]:
    """The arguments a Windows program such as python.exe reads from its command line (the C runtime's rules)."""
    args, current, started, quoted, i = [], [], False, False, 0
    while i < len(command_line):
        c = command_line[i]
        if c == "\\":
            end = i
            while end < len(command_line) and command_line[end] == "\\":
                end += 1
            if end < len(command_line) and command_line[end] == '"':
                current.append("\\" * ((end - i) // 2))
                if (end - i) % 2:
                    current.append('"')
                    end += 1
            else:
                current.append("\\" * (end - i))
            i, started = end, True
        elif c == '"':
            if quoted and command_line[i + 1:i + 2] == '"':
                current.append('"')
                i += 1
            else:
                quoted = not quoted
            i, started = i + 1, True
        elif c in " \t" and not quoted:
            if started:
                args.append("".join(current))
            current, started, i = [], False, i + 1
        else:
            current.append(c)
            i, started = i + 1, True
    if started:
        args.append("".join(current))
    return args


# --- launch.bat under Wine ------------------------------------------------------------------------------------------

# Each stub is a real console program, pip's Windows script launcher (distlib's t64.exe), pointed at a batch file of
# the same name: a .bat run without `call` would end launch.bat at its first use, as cmd ends a batch file that
# starts another, and a Unix script started from Wine's cmd is not waited for. The launcher appends its own path
# and the command line it was given, unchanged, so each batch file sees `"...\py.exe" -3.11 -m venv .venv`.
STUB_HEADER = r"""@echo off
rem A stand-in for %~n0: records its command line and the folder it ran in; fails on the argument STUB_FAIL_ON.
>>"%STUB_LOG%" echo [%CD%] %~n0 %*
for %%A in (%*) do if "%%~A"=="%STUB_FAIL_ON%" exit /b 1
"""
MAKE_VENV = r"""
:make_venv
rem "-m venv .venv": a venv whose python.exe is the venv-python stub.
mkdir .venv\Scripts
copy /b "%~dp0venv-python.exe" .venv\Scripts\python.exe >nul
exit /b 0
"""
STUBS = {
    "py": r"""
rem The Python launcher, with the versions in STUB_PY_VERSIONS.
if "%~3"=="-m" goto make_venv
for %%V in (%STUB_PY_VERSIONS%) do if "%~2"=="-%%V" exit /b 0
exit /b 1
""" + MAKE_VENV,
    "python": r"""
rem python on the PATH: passes the launcher's version check when STUB_PYTHON_OK is 1.
if "%~2"=="-m" goto make_venv
if "%STUB_PYTHON_OK%"=="1" exit /b 0
exit /b 1
""" + MAKE_VENV,
    "nvidia-smi": r"""
rem Prints gpus.txt: a line for each card, its compute capability (or what a broken driver prints).
type "%~dp0gpus.txt"
""",
    "venv-python": r"""
rem The venv's python.exe. For "-c", the launcher's hash of the requirement files named after the code, it prints
rem their sizes instead. pip succeeds; app.py and pytest exit with STUB_EXIT.
setlocal EnableDelayedExpansion
if not "%~2"=="-c" goto ran
if "%STUB_FAIL_ON%"=="hash" exit /b 1
set "SIZES=sizes"
for %%F in (%4 %5 %6) do set "SIZES=!SIZES!-%%~zF"
echo !SIZES!
exit /b 0
:ran
if "%~3"=="pip" exit /b 0
exit /b %STUB_EXIT%
""",
}


def script_launcher() -> Path | None:
    pip = importlib.util.find_spec("pip")
    t64 = Path(pip.origin).parent / "_vendor" / "distlib" / "t64.exe" if pip and pip.origin else None
    return t64 if t64 and t64.exists() else None


@dataclass
class Wine:
    program: str
    env: dict

    def cmd(self, batch_file: Path, cwd: Path, env: dict) -> subprocess.CompletedProcess:
        return subprocess.run([self.program, "cmd", "/c", windows_path(batch_file)], cwd=cwd, env={**self.env, **env},
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def wine() -> Wine:
    """Wine with a prefix of its own, kept in the cache: its first start there takes a few seconds and 700 MB."""
    env = {**os.environ, "WINEPREFIX": str(CACHE / "wine-prefix"), "WINEDEBUG": "-all",
           "WINEDLLOVERRIDES": "mscoree,mshtml="}
    started = subprocess.run([WINE, "cmd", "/c", "exit 0"], env=env, stdin=subprocess.DEVNULL, capture_output=True,
                             timeout=300)
    assert started.returncode == 0, started.stderr.decode(errors="replace")
    return Wine(WINE, env)  # its wineserver ends by itself a few seconds after its last program


@dataclass
class Call:
    program: str
    argv: list[str]
    cwd: str

    def __str__(self) -> str:
        return " ".join([self.program, subprocess.list2cmdline(self.argv)]).strip()


@dataclass
class Run:
    returncode: int
    output: str
    calls: list[Call]

    @property
    def commands(self) -> list[str]:
        """What the launcher ran to set up and start, without its questions: the Python versions, the cards,
        the hash of the requirement files."""
        return [str(call) for call in self.calls
                if call.program != "nvidia-smi" and "-c" not in call.argv[:2]]


class WindowsLauncher:
    """launch.bat and the requirement files in `...\\Ana Maria\\Chatterbox Studio`, stub programs first on the
    PATH, started from another folder as a console or a double-click would."""

    def __init__(self, wine: Wine, root: Path):
        self.wine, self.root = wine, root
        self.folder = root / "Ana Maria" / "Chatterbox Studio"
        self.folder.mkdir(parents=True)
        for name in ("launch.bat", *REQUIREMENTS):
            shutil.copy(ROOT / name, self.folder)
        self.bin, self.stubs = root / "bin", root / "stubs"  # the programs, on the PATH; their batch files, not
        self.bin.mkdir()
        self.stubs.mkdir()
        assert " " not in str(self.stubs), "a stub's batch file is named unquoted after cmd /c"
        t64 = script_launcher().read_bytes()
        empty_zip = io.BytesIO()
        zipfile.ZipFile(empty_zip, "w").close()
        for name, body in STUBS.items():
            (self.stubs / f"{name}.bat").write_bytes((STUB_HEADER + body).replace("\n", "\r\n").encode())
            shebang = f"#!C:\\windows\\system32\\cmd.exe /c {windows_path(self.stubs / name)}.bat\n".encode()
            (self.stubs / f"{name}.exe").write_bytes(t64 + shebang + empty_zip.getvalue())
        self.log = root / "calls.log"

    def run(self, arguments: str = "", *, py: tuple[str, ...] | None = ("3.11", "3.12"), python: str | None = None,
            gpus: tuple[str, ...] | None = None, fail_on: str = "", exit_code: int = 0) -> Run:
        """`"...\\launch.bat" ARGUMENTS`, typed in a console: with the Python launcher having the versions `py`,
        python on the PATH at version `python`, cards whose compute capabilities nvidia-smi lists as `gpus`
        (None: no NVIDIA driver), the stub with the argument `fail_on` failing, app.py or pytest ending with
        `exit_code`."""
        present = {"py": py is not None, "python": python is not None, "nvidia-smi": gpus is not None}
        for name, there in present.items():
            exe = self.bin / f"{name}.exe"
            exe.unlink(missing_ok=True)
            if there:
                shutil.copy(self.stubs / f"{name}.exe", exe)
        (self.stubs / "gpus.txt").write_text("".join(f"{line}\r\n" for line in gpus or ()))
        go = self.root / "go.bat"
        go.write_bytes(f'@echo off\r\n"{windows_path(self.folder / "launch.bat")}" {arguments}\r\n'.encode())
        self.log.unlink(missing_ok=True)
        env = {
            "WINEPATH": windows_path(self.bin), "STUB_LOG": windows_path(self.log),
            "STUB_PY_VERSIONS": " ".join(py or ()), "STUB_PYTHON_OK": str(int(python in ("3.10", "3.11", "3.12"))),
            "STUB_FAIL_ON": fail_on or "(none)", "STUB_EXIT": str(exit_code),
            # Left over in a user's console: the launcher must set its own, not read these.
            "PY": "py -2.7", "CC_MAJOR": "12", "REQ_HASH": "stale", "ARGS": "stale",
        }
        done = self.wine.cmd(go, cwd=self.root, env=env)
        calls = []
        for line in (self.log.read_text(errors="replace").splitlines() if self.log.exists() else []):
            cwd, program, command_line = re.fullmatch(r"\[(.*?)\] (\S+) (.*)", line).groups()
            calls.append(Call(program, windows_argv(command_line)[1:], cwd))  # [0] is the stub's own .exe
        return Run(done.returncode, (done.stdout + done.stderr).decode(errors="replace"), calls)

    def stamps(self) -> list[str]:
        return sorted(path.name for path in (self.folder / ".venv").glob(".installed-*"))


@pytest.fixture
def launcher(wine, tmp_path) -> WindowsLauncher:
    if script_launcher() is None:
        pytest.skip("pip's Windows script launcher (pip/_vendor/distlib/t64.exe) is not installed")
    return WindowsLauncher(wine, tmp_path)


@needs_wine
def test_first_start_makes_the_venv_installs_and_starts_the_studio_with_every_argument(launcher):
    run = launcher.run('--port 5093 --voice "Ana Maria" --text "Hi, it\'s me!" --seed=7')
    assert run.returncode == 0, run.output
    assert run.commands == [
        "py -3.11 -m venv .venv",
        PIP_UPGRADE,
        f"{PIP} -r requirements.txt",
        'venv-python app.py --port 5093 --voice "Ana Maria" --text "Hi, it\'s me!" --seed=7',
    ]
    assert run.calls[-1].argv == ["app.py", "--port", "5093", "--voice", "Ana Maria", "--text", "Hi, it's me!",
                                  "--seed=7"]
    assert {call.cwd for call in run.calls} == {windows_path(launcher.folder)}
    assert "Creating .venv with py -3.11..." in run.output
    size = (launcher.folder / "requirements.txt").stat().st_size  # the stub's stand-in for the hash
    assert launcher.stamps() == [f".installed-windows-sizes-{size}-torch2.6.0-cpu"]


@needs_wine
def test_the_studio_exit_code_is_the_launchers(launcher):
    assert launcher.run("--no-browser", exit_code=3).returncode == 3


@needs_wine
def test_a_second_start_skips_the_install_and_a_changed_requirements_file_is_installed_again(launcher):
    assert launcher.run("setup").returncode == 0
    assert launcher.run().commands == ["venv-python app.py"]
    with open(launcher.folder / "requirements.txt", "a") as requirements:
        requirements.write("soundfile>=0.13\n")
    assert launcher.run().commands == [PIP_UPGRADE, f"{PIP} -r requirements.txt", "venv-python app.py"]
    assert launcher.run().commands == ["venv-python app.py"]


@needs_wine
def test_setup_only_installs(launcher):
    run = launcher.run("setup")
    assert run.returncode == 0, run.output
    assert run.commands == ["py -3.11 -m venv .venv", PIP_UPGRADE, f"{PIP} -r requirements.txt"]
    assert "Ready. Start the studio with launch.bat" in run.output


@needs_wine
@pytest.mark.parametrize("typed, pytest_args", [
    ("test", []),
    ('test -k "a or b" --maxfail=1 -p no:cacheprovider', ["-k", "a or b", "--maxfail=1", "-p", "no:cacheprovider"]),
    ("Test tests/test_cli.py::test_x -x -q", ["tests/test_cli.py::test_x", "-x", "-q"]),
])
def test_test_installs_the_test_requirements_and_passes_pytest_exactly_the_arguments_after_test(
        launcher, typed, pytest_args):
    run = launcher.run(typed, exit_code=1)
    assert run.returncode == 1, run.output
    assert run.commands[:-1] == ["py -3.11 -m venv .venv", PIP_UPGRADE,
                                 f"{PIP} -r requirements.txt -r requirements-test.txt"]
    assert run.calls[-1].program == "venv-python"
    assert run.calls[-1].argv == ["-m", "pytest", "tests", *pytest_args]


@needs_wine
def test_the_stamp_names_the_requirement_files_sha256_as_launch_sh_does(launcher):
    """The venv's Python hashes the files; the stub prints sizes instead, so run the code it was given here."""
    run = launcher.run("test")
    [hash_call] = [call for call in run.calls if call.program == "venv-python" and call.argv[0] == "-c"]
    assert hash_call.argv[2:] == list(REQUIREMENTS)
    printed = subprocess.run([sys.executable, *hash_call.argv], cwd=launcher.folder, capture_output=True, text=True,
                             check=True).stdout
    contents = b"".join((launcher.folder / name).read_bytes() for name in REQUIREMENTS)
    assert printed.strip() == hashlib.sha256(contents).hexdigest()[:16]


@needs_wine
@pytest.mark.parametrize("gpus, cuda_install, stamp_end", [
    (None, None, "-torch2.6.0-cpu"),
    (("8.6",), CUDA_12_4, "-torch2.6.0-cu124"),
    (("12.0",), CUDA_12_8, "-torch2.7.1-cu128"),
    (("8.9", "12.0"), CUDA_12_8, "-torch2.7.1-cu128"),
    (("12.0", "8.9"), CUDA_12_8, "-torch2.7.1-cu128"),
    (("10.0",), CUDA_12_8, "-torch2.7.1-cu128"),
    (('Field "compute_cap" is not a valid field to query.',), None, "-torch2.6.0-cpu"),
], ids=["no-driver", "8.x", "12.x", "8.x-and-12.x", "12.x-and-8.x", "10.x", "old-driver"])
def test_the_torch_build_is_for_the_newest_nvidia_card(launcher, gpus, cuda_install, stamp_end):
    run = launcher.run("setup", gpus=gpus)
    assert run.returncode == 0, run.output
    assert run.commands == ["py -3.11 -m venv .venv", PIP_UPGRADE, f"{PIP} -r requirements.txt",
                            *([cuda_install] if cuda_install else [])]
    if gpus is not None:
        [query] = [call for call in run.calls if call.program == "nvidia-smi"]
        assert query.argv == ["--query-gpu=compute_cap", "--format=csv,noheader"]
    [stamp] = launcher.stamps()
    assert stamp.endswith(stamp_end)


@needs_wine
@pytest.mark.parametrize("py, python, maker", [
    (("3.12", "3.11", "3.10"), None, "py -3.11"),
    (("3.12", "3.10"), None, "py -3.10"),
    (("3.13",), "3.12", "python"),
    (None, "3.10", "python"),
])
def test_the_venv_is_made_by_a_python_from_3_10_to_3_12_preferring_3_11(launcher, py, python, maker):
    run = launcher.run("setup", py=py, python=python)
    assert run.returncode == 0, run.output
    assert run.commands[0] == f"{maker} -m venv .venv"
    assert f"Creating .venv with {maker}..." in run.output


@needs_wine
@pytest.mark.parametrize("py, python", [(("3.13",), "3.13"), (None, None)], ids=["too-new", "none"])
def test_without_a_fitting_python_it_says_which_to_install_and_stops(launcher, py, python):
    run = launcher.run(py=py, python=python)
    assert run.returncode == 1
    assert "Chatterbox Studio needs Python 3.10, 3.11 or 3.12 from https://www.python.org/downloads/" in run.output
    assert run.commands == []
    assert not (launcher.folder / ".venv").exists()


@needs_wine
@pytest.mark.parametrize("fail_on", ["venv", "hash", "--upgrade", "-r", "--force-reinstall"])
def test_a_failed_step_of_the_setup_stops_it_with_an_error(launcher, fail_on):
    run = launcher.run("--no-browser", gpus=("8.6",), fail_on=fail_on)
    assert run.returncode == 1, run.output
    assert "Setting up Chatterbox Studio failed: see the messages above." in run.output
    assert not any("app.py" in command for command in run.commands)
    assert not (launcher.folder / ".venv").exists() or launcher.stamps() == []


def test_launch_bat_has_windows_line_endings():
    """cmd can miss a goto's label in a file with bare LF endings; .gitattributes checks launch.bat out with CRLF."""
    launch_bat = (ROOT / "launch.bat").read_bytes()
    assert launch_bat.count(b"\n") == launch_bat.count(b"\r\n")


# --- launch.sh on a Mac's tools -------------------------------------------------------------------------------------

@pytest.fixture
def unix_launcher(tmp_path) -> tuple[Path, Path, str]:
    """A copy of launch.sh beside a fake .venv/bin/python that runs -c code (the stamp's hash) for real and
    records every other command line; a PATH of every program on this one but sha256sum and shasum."""
    folder = tmp_path / "studio"
    (folder / ".venv" / "bin").mkdir(parents=True)
    for name in ("launch.sh", *REQUIREMENTS, "requirements-cluster.txt"):
        shutil.copy(ROOT / name, folder)
    log = tmp_path / "calls.jsonl"
    fake = folder / ".venv" / "bin" / "python"
    fake.write_text(f"""#!{sys.executable}
import json, os, subprocess, sys
if sys.argv[1] == "-c":
    sys.exit(1 if os.environ.get("FAKE_HASH_FAILS") else subprocess.call([sys.executable, *sys.argv[1:]]))
with open({str(log)!r}, "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
""")
    fake.chmod(0o755)
    tools = tmp_path / "path"
    tools.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        for program in Path(directory).glob("*") if Path(directory).is_dir() else ():
            if program.name not in ("sha256sum", "shasum") and not (tools / program.name).exists():
                (tools / program.name).symlink_to(program)
    return folder, log, str(tools)


PIP_INSTALL = ["-m", "pip", "install", "--disable-pip-version-check"]


def run_launch_sh(unix_launcher, *args, **env) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    folder, log, path = unix_launcher
    log.unlink(missing_ok=True)
    done = subprocess.run(["bash", "launch.sh", *args], cwd=folder, env={**os.environ, "PATH": path, **env},
                          capture_output=True, text=True, timeout=60)
    return done, [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_launch_sh_installs_a_changed_requirements_file_again_without_sha256sum(unix_launcher):
    folder = unix_launcher[0]
    upgrade, install = [*PIP_INSTALL, "-q", "--upgrade", "pip"], [*PIP_INSTALL, "-r", "requirements.txt"]
    done, calls = run_launch_sh(unix_launcher, "setup")
    assert done.returncode == 0, done.stderr
    assert calls == [upgrade, install]
    # The same stamp as `cat requirements.txt | sha256sum` named before, so an existing venv is not reinstalled.
    digest = hashlib.sha256((folder / "requirements.txt").read_bytes()).hexdigest()[:16]
    assert (folder / ".venv" / f".installed-{digest}").exists()

    assert run_launch_sh(unix_launcher, "setup")[1] == []
    with open(folder / "requirements.txt", "a") as requirements:
        requirements.write("soundfile>=0.13\n")
    assert run_launch_sh(unix_launcher, "setup")[1] == [upgrade, install]
    assert run_launch_sh(unix_launcher, "setup")[1] == []


def test_launch_sh_test_installs_both_files_and_passes_pytest_the_arguments(unix_launcher):
    done, calls = run_launch_sh(unix_launcher, "test", "-k", "a or b", "--maxfail=1")
    assert done.returncode == 0, done.stderr
    assert calls[1:] == [
        [*PIP_INSTALL, "-r", "requirements.txt", "-r", "requirements-test.txt", "-r", "requirements-cluster.txt"],
        ["-m", "pytest", "tests", "-k", "a or b", "--maxfail=1"],
    ]


def test_launch_sh_installs_ray_only_when_the_flags_place_the_engine_on_it(unix_launcher):
    done, calls = run_launch_sh(unix_launcher, "--port", "7000")
    assert done.returncode == 0, done.stderr
    assert calls[1:] == [[*PIP_INSTALL, "-r", "requirements.txt"], ["app.py", "--port", "7000"]]
    for flags in (["--replicas", "2"], ["--ray-address=auto"], ["dataset", "--autoscale", "1:4"]):
        for stamp in (unix_launcher[0] / ".venv").glob(".installed-*"):
            stamp.unlink()
        done, calls = run_launch_sh(unix_launcher, *flags)
        assert done.returncode == 0, done.stderr
        assert [*PIP_INSTALL, "-r", "requirements.txt", "-r", "requirements-cluster.txt"] in calls
        assert calls[-1] == ["app.py", *flags]


def test_launch_sh_stops_when_the_stamp_cannot_be_hashed(unix_launcher):
    done, calls = run_launch_sh(unix_launcher, "setup", FAKE_HASH_FAILS="1")
    assert done.returncode != 0
    assert calls == []
