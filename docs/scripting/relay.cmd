@echo off
rem relay.cmd [ADDR:]PORT HOST:PORT
rem Start a relay from [ADDR:]PORT to HOST:PORT in the background, wait
rem until it listens, send one request through it, and stop it.  PORT 0
rem lets the system pick a free port; the script reads which one from the
rem relay's "listening on ADDR PORT" line.  Exit 0 when the request got an
rem answer through the relay, 1 if the relay did not start or the request
rem failed, 2 for bad arguments.  See docs/SCRIPTING.md.
setlocal
set "listen=%~1"
set "target=%~2"
if "%target%"=="" (
  echo usage: relay [ADDR:]PORT HOST:PORT 1>&2
  exit /b 2
)
set "log=%TEMP%\iocptool-relay-%RANDOM%.log"

rem start /b: in the background, in this console; its stderr (where the
rem listening line and any error go) into the log.
start "iocptool relay" /b iocptool relay --no-stats %listen% %target% 2>"%log%"

rem Up to 10 s for "listening on ADDR PORT": from then on it accepts.  A
rem line "iocptool: ..." instead is its error: it has ended already.
set n=0
:wait
set port=
set error=
for /f "usebackq tokens=1,2,4" %%a in ("%log%") do (
  if "%%a %%b"=="listening on" set port=%%c
  if "%%a"=="iocptool:" set error=1
)
if defined port goto listening
if defined error goto failed
set /a n+=1
if %n% geq 10 goto failed
ping -n 2 127.0.0.1 >nul
goto wait

:listening
echo relay: listening on port %port%, forwarding to %target%

rem The work that needs the relay; here one request through it.
echo hello through the relay| iocptool connect -w 5 127.0.0.1 %port%
set rc=%errorlevel%
if not %rc%==0 echo relay: the request through the relay failed, status %rc% 1>&2
if not %rc%==0 set rc=1

rem Stop it.  A console program in the background has no window to close,
rem so taskkill /f ends it (connections still open are reset).  /im ends
rem every iocptool.exe of this session: with others running, use
rem taskkill /f /pid PID, or PowerShell (docs/SCRIPTING.md), which knows
rem the process it started.
taskkill /f /im iocptool.exe >nul
del "%log%" 2>nul
iocptool connect -z -w 2 127.0.0.1 %port% >nul
if %errorlevel%==0 goto running
echo relay: stopped
exit /b %rc%

:running
echo relay: still listening after taskkill 1>&2
exit /b 1

:failed
echo relay: the relay did not start: 1>&2
type "%log%" 1>&2
taskkill /f /im iocptool.exe >nul 2>nul
del "%log%" 2>nul
exit /b 1
