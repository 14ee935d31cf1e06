@echo off
rem statslog.cmd [PID] [INTERVAL] [COUNT]
rem Log the live counters of a running iocptool server (listen, echo or
rem relay, started without --no-stats) as JSON Lines on stdout: one
rem `iocptool stats --json` object every INTERVAL seconds (default 10),
rem COUNT times (default: until the server ends or Ctrl-C).  PID picks the
rem server when several run; without it, or with "-", the only one (with
rem several, each line is their list instead).  Exit 0 after COUNT samples,
rem 1 when no server answers (none runs, or it has ended), 2 for bad
rem arguments.  See docs/SCRIPTING.md.
rem     statslog 4242 60 >> counters.jsonl
setlocal
set "target=%~1"
if "%target%"=="-" set target=
set "interval=%~2"
if "%interval%"=="" set interval=10
set "count=%~3"
set /a pause=interval+1
if %pause% lss 2 (
  echo usage: statslog [PID] [INTERVAL] [COUNT], INTERVAL at least 1 1>&2
  exit /b 2
)
set n=0

:sample
iocptool stats --json %target%
set rc=%errorlevel%
if not %rc%==0 exit /b %rc%
set /a n+=1
if defined count if %n% geq %count% exit /b 0
rem INTERVAL seconds: ping waits one second between its echoes.
ping -n %pause% 127.0.0.1 >nul
goto sample
