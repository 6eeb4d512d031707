@echo off
rem Chatterbox Studio launcher for Windows: sets up .venv on first run, then starts the studio.
rem   launch.bat [app.py flags]     set up if needed, then start the studio (UI and API)
rem   launch.bat setup              only install
rem   launch.bat test [pytest args] set up, then run the test suite
rem
rem cmd expands the arguments and variables in a whole ( ) block when it reads the block, before any line of
rem it runs, and delayed expansion would drop every "!" from a folder's name or an argument. So this file has no
rem blocks and no delayed expansion: each step is one line, and goto picks the next. A failed step is caught
rem by its ERRORLEVEL on the next line, which also counts a crash's negative code (and Wine 8's cmd, unlike
rem Windows', runs what follows && or || whether the command failed or not).
rem tests/test_launchers.py runs it under Wine's cmd, with stub programs in place of Python, pip and nvidia-smi.
setlocal DisableDelayedExpansion
rem A double-click or "Run as administrator" starts elsewhere: work in this file's folder (pushd maps a UNC path).
rem Checked by where it got to: pushd leaves ERRORLEVEL as it was when it succeeds.
pushd "%~dp0"
if not exist "%~nx0" goto failed

set "MODE=start"
if /i "%~1"=="setup" set "MODE=setup"
if /i "%~1"=="test" set "MODE=test"

rem chatterbox-tts pins torch 2.6, which is built for Python 3.10 to 3.12: ask the Python launcher, then python.
set "PY="
for %%V in (3.11 3.10 3.12) do if not defined PY call :try_python py -%%V
if not defined PY call :try_python python
if not defined PY goto no_python

if exist .venv\Scripts\python.exe goto venv_ready
echo Creating .venv with %PY%...
%PY% -m venv .venv
if %ERRORLEVEL% neq 0 goto failed
:venv_ready
set "VPY=.venv\Scripts\python.exe"

rem The registry's Windows torch is CPU-only: with an NVIDIA card, take a CUDA build from PyTorch's index.
rem nvidia-smi prints one line per card, such as "8.6"; the highest compute capability decides, since the build
rem for it runs the older cards too. A line that is not a version (an old driver's error) counts as no card.
set "CC_MAJOR="
for /f "tokens=1 delims=. " %%C in ('nvidia-smi --query-gpu^=compute_cap --format^=csv^,noheader 2^>nul') do call :note_gpu "%%C"
set "TORCH=cpu"
set "TORCH_VERSION=2.6.0"
if not defined CC_MAJOR goto torch_chosen
set "TORCH=cu124"
rem Blackwell cards (compute capability 10 and up; the RTX 50-series is 12) need CUDA 12.8, first built for torch 2.7.
if %CC_MAJOR% GEQ 10 set "TORCH=cu128"
if %CC_MAJOR% GEQ 10 set "TORCH_VERSION=2.7.1"
:torch_chosen

rem A stamp names what was installed: the requirement files' sha256 (as launch.sh's) and the torch build.
rem With the same ones, later runs skip pip; a changed requirements file is installed again.
set "REQUIREMENTS=requirements.txt"
set "PIP_REQUIREMENTS=-r requirements.txt"
if "%MODE%"=="test" set "REQUIREMENTS=requirements.txt requirements-test.txt"
if "%MODE%"=="test" set "PIP_REQUIREMENTS=-r requirements.txt -r requirements-test.txt"
set "REQ_HASH="
for /f %%H in ('%VPY% -c "import hashlib, pathlib, sys; h = hashlib.sha256(); [h.update(pathlib.Path(f).read_bytes()) for f in sys.argv[1:]]; print(h.hexdigest()[:16])" %REQUIREMENTS%') do set "REQ_HASH=%%H"
if not defined REQ_HASH goto failed
set "STAMP=.venv\.installed-windows-%REQ_HASH%-torch%TORCH_VERSION%-%TORCH%"
if exist "%STAMP%" goto installed
echo Installing %REQUIREMENTS% into .venv (the first time takes a few minutes and about 6 GB)...
%VPY% -m pip install --disable-pip-version-check -q --upgrade pip
if %ERRORLEVEL% neq 0 goto failed
%VPY% -m pip install --disable-pip-version-check %PIP_REQUIREMENTS%
if %ERRORLEVEL% neq 0 goto failed
if "%TORCH%"=="cpu" goto write_stamp
echo NVIDIA GPU found (compute capability %CC_MAJOR%.x): installing torch %TORCH_VERSION% with CUDA...
%VPY% -m pip install --disable-pip-version-check --force-reinstall --no-deps torch==%TORCH_VERSION% torchaudio==%TORCH_VERSION% --index-url https://download.pytorch.org/whl/%TORCH%
if %ERRORLEVEL% neq 0 goto failed
:write_stamp
type nul > "%STAMP%"
:installed

if "%MODE%"=="setup" goto ready
if "%MODE%"=="test" goto run_tests
%VPY% app.py %*
exit /b %ERRORLEVEL%

:run_tests
rem %* is every argument as typed, and shift does not change it: take the word "test" off its front.
set ARGS=%*
set ARGS=%ARGS:*test=%
%VPY% -m pytest tests %ARGS%
exit /b %ERRORLEVEL%

:ready
echo Ready. Start the studio with launch.bat
exit /b 0

:try_python
rem Keeps %* as the Python to use if it runs and is 3.10 to 3.12.
%* -c "import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 12) else 1)" >nul 2>&1
if %ERRORLEVEL% equ 0 set "PY=%*"
exit /b 0

:note_gpu
rem %1 is a line of nvidia-smi's up to its first "." or space: keep it if it is a number above the last one.
for /f "delims=0123456789" %%X in ("%~1") do exit /b 0
if not defined CC_MAJOR set "CC_MAJOR=%~1"
if %~1 GTR %CC_MAJOR% set "CC_MAJOR=%~1"
exit /b 0

:no_python
echo Chatterbox Studio needs Python 3.10, 3.11 or 3.12 from https://www.python.org/downloads/ (tick "Add python.exe to PATH").
pause
exit /b 1

:failed
echo Setting up Chatterbox Studio failed: see the messages above.
pause
exit /b 1
