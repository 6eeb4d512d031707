@echo off
rem Chatterbox Studio launcher for Windows: sets up .venv on first run, then starts the studio.
rem   launch.bat [app.py flags]     set up if needed, then start the studio (UI and API)
rem   launch.bat setup              only install
rem   launch.bat test [pytest args] set up, then run the test suite
setlocal EnableDelayedExpansion
cd /d "%~dp0"

set "PY="
for %%V in (3.11 3.10 3.12) do (
  if not defined PY (
    py -%%V -c "import sys" >nul 2>&1 && set "PY=py -%%V"
  )
)
if not defined PY (
  python -c "import sys; sys.exit(0 if (3,10) <= sys.version_info[:2] <= (3,12) else 1)" >nul 2>&1 && set "PY=python"
)
if not defined PY (
  echo Chatterbox Studio needs Python 3.10, 3.11 or 3.12 from https://www.python.org/downloads/ ^(tick "Add to PATH"^).
  pause
  exit /b 1
)

if not exist .venv\Scripts\python.exe (
  echo Creating .venv with %PY%...
  %PY% -m venv .venv || exit /b 1
)
set "VPY=.venv\Scripts\python.exe"

rem The registry's Windows torch is CPU-only: with an NVIDIA card, take a CUDA build from PyTorch's index.
set "TORCH_INDEX="
set "TORCH_VERSION=2.6.0"
for /f "tokens=1 delims=." %%C in ('nvidia-smi --query-gpu^=compute_cap --format^=csv^,noheader 2^>nul') do set "CC_MAJOR=%%C"
if defined CC_MAJOR (
  if !CC_MAJOR! GEQ 12 (
    rem RTX 50-series ^(Blackwell^) needs CUDA 12.8, first built for torch 2.7.
    set "TORCH_INDEX=https://download.pytorch.org/whl/cu128"
    set "TORCH_VERSION=2.7.1"
  ) else (
    set "TORCH_INDEX=https://download.pytorch.org/whl/cu124"
  )
)

set "STAMP=.venv\.installed-windows-!TORCH_VERSION!-!CC_MAJOR!"
if "%~1"=="test" set "STAMP=!STAMP!-test"
if not exist "!STAMP!" (
  echo Installing requirements into .venv ^(the first time takes a few minutes and about 6 GB^)...
  %VPY% -m pip install --disable-pip-version-check -q --upgrade pip || exit /b 1
  %VPY% -m pip install --disable-pip-version-check -r requirements.txt || exit /b 1
  if "%~1"=="test" %VPY% -m pip install --disable-pip-version-check -r requirements-test.txt || exit /b 1
  if defined TORCH_INDEX (
    echo NVIDIA GPU found ^(compute capability !CC_MAJOR!.x^): installing torch !TORCH_VERSION! with CUDA...
    %VPY% -m pip install --disable-pip-version-check --force-reinstall --no-deps torch==!TORCH_VERSION! torchaudio==!TORCH_VERSION! --index-url !TORCH_INDEX! || exit /b 1
  )
  type nul > "!STAMP!"
)

if "%~1"=="setup" (
  echo Ready. Start the studio with launch.bat
  exit /b 0
)
if "%~1"=="test" (
  shift
  %VPY% -m pytest tests %1 %2 %3 %4 %5 %6 %7 %8 %9
  exit /b !ERRORLEVEL!
)
%VPY% app.py %*
