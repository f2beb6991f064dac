@echo off
rem Double-click me. The first run builds .venv and installs the dependencies; every run makes
rem the signals of the production model, explains how it ended and keeps this window open.
rem Exit code: generate_signals.py's (trainer\exit_codes.py), 9009 when no Python 3.11+ was found,
rem or bootstrap.py's when setting up the environment failed. Scripts that must not stop at the
rem final pause can feed it an empty input (redirect from nul).
rem No parenthesised blocks on purpose: variables inside a block expand before the block runs,
rem so every exit code is copied into RC on the line right after its command and tested by goto.
rem No "chcp 65001" either: Python writes Unicode to the console itself, and console.py falls
rem back to ASCII wherever the output encoding cannot show a character.
rem Comments avoid the percent sign and redirection characters, which cmd may act on even here.
setlocal EnableExtensions DisableDelayedExpansion
rem A user variable called ERRORLEVEL would hide the real exit codes read below.
set "ERRORLEVEL="
set "RC=0"
set "PUSHED="
rem A folder dropped onto this file arrives as the only argument: use it as --prices-dir.
set "PRICES_FOLDER="
if not "%~2"=="" goto after_drop
if "%~1"=="" goto after_drop
if exist "%~1\*" set "PRICES_FOLDER=%~f1"
:after_drop
title Stock signals

rem Work in this file's folder wherever it was started from; quotes keep paths with spaces whole.
cd /d "%~dp0" 2>nul
set "RC=%ERRORLEVEL%"
if "%RC%"=="0" goto find_python
rem A network share (\\server\share) cannot be cmd's current folder; pushd maps it to a drive.
pushd "%~dp0"
set "RC=%ERRORLEVEL%"
if not "%RC%"=="0" goto no_folder
set "PUSHED=1"

:find_python
rem The py launcher first (it picks the newest installed Python 3), then python on PATH.
rem bootstrap.py --check-python exits 0 when the version is good and 1 when it is too old.
set "PYTHON="
set "TOO_OLD="
py -3 trainer\bootstrap.py --check-python >nul 2>&1
set "RC=%ERRORLEVEL%"
if "%RC%"=="0" set "PYTHON=py -3"
if "%RC%"=="1" set "TOO_OLD=py -3"
if defined PYTHON goto setup_environment
python trainer\bootstrap.py --check-python >nul 2>&1
set "RC=%ERRORLEVEL%"
if "%RC%"=="0" set "PYTHON=python"
if "%RC%"=="1" if not defined TOO_OLD set "TOO_OLD=python"
if defined PYTHON goto setup_environment
goto no_python

:setup_environment
rem Creates .venv on the first run; installs again only when the requirements stamp changed.
%PYTHON% trainer\bootstrap.py
set "RC=%ERRORLEVEL%"
if "%RC%"=="0" goto run_signals
echo.
echo Setting up the Python environment failed (bootstrap exit code %RC%).
echo The messages above say what failed. The usual causes:
echo   - no internet connection (the first run downloads the dependencies);
echo   - a folder path too long for Windows: move this folder nearer to C:\ and try again;
echo   - a Python too new for the dependencies: install Python 3.12 from python.org.
echo If it keeps failing, delete the .venv folder next to this file and run this file again.
goto finish

:run_signals
echo To stop: press Ctrl+C, and when Windows asks "Terminate batch job (Y/N)?" answer N.
echo Progress is saved either way; N lets this window explain how it ended.
if "%PRICES_FOLDER%"=="" goto run_signals_plain
".venv\Scripts\python.exe" generate_signals.py --prices-dir "%PRICES_FOLDER%"
set "RC=%ERRORLEVEL%"
goto run_signals_done
:run_signals_plain
".venv\Scripts\python.exe" generate_signals.py %*
set "RC=%ERRORLEVEL%"
:run_signals_done
echo.
if "%RC%"=="0" goto exit_0
if "%RC%"=="1" goto exit_1
if "%RC%"=="2" goto exit_2
if "%RC%"=="3" goto exit_3
if "%RC%"=="4" goto exit_4
if "%RC%"=="5" goto exit_5
if "%RC%"=="6" goto exit_6
goto exit_other

:exit_0
echo Exit code 0: signals written
echo The signals folder holds the CSV and an HTML page for the date shown above.
goto finish

:exit_1
echo Exit code 1: unexpected error (see logs/training.log); nothing about training was changed
echo Fix the cause named in the log, then run this file again.
goto finish

:exit_2
echo Exit code 2: an argument, date or file needs fixing (message above)
echo Fix it and run this file again.
goto finish

:exit_3
echo Exit code 3: data error: the database cannot be used (message above)
echo Follow the message above, then run this file again.
goto finish

:exit_4
echo Exit code 4: interrupted; run again to make these signals
goto finish

:exit_5
echo Exit code 5: another signals run is already working in this folder; wait for it
goto finish

:exit_6
echo Exit code 6: no usable model to make signals with (message above says how to get one)
echo Double-click run_training.bat first; signals are made once the gate promotes a model.
goto finish

:exit_other
echo Exit code %RC%: the program was stopped from outside (killed, out of memory, or a crash).
echo Run this file again; details, if any, are at the end of logs\training.log.
goto finish

:no_python
echo.
rem Only --version: an old Python could not even parse bootstrap.py (a SyntaxError screen).
if defined TOO_OLD %TOO_OLD% --version
if defined TOO_OLD echo That Python is too old.
echo No Python 3.11 or newer was found on this computer. To install it:
echo   1. Download Python from https://www.python.org/downloads/ and run the installer.
echo   2. On the installer's first page tick "Add python.exe to PATH", then click Install Now.
echo   3. Double-click run_signals.bat again.
set "RC=9009"
goto finish

:no_folder
echo Cannot open the folder "%~dp0" (exit code %RC%).
goto finish

:finish
echo.
if defined PUSHED popd
pause
exit /b %RC%
