@echo off
rem healthcheck.cmd HOST PORT [TRIES]
rem Wait until HOST PORT accepts connections: one probe a second, at most
rem TRIES probes (default 30).  Exit 0 once it is up, 1 if it never came
rem up, 2 for bad arguments.  See docs/SCRIPTING.md.
setlocal
set "host=%~1"
set "port=%~2"
set "tries=%~3"
if "%port%"=="" (
  echo usage: healthcheck HOST PORT [TRIES] 1>&2
  exit /b 2
)
if "%tries%"=="" set tries=30
set n=0

:probe
set /a n+=1
iocptool connect -z -w 2 %host% %port% >nul
set rc=%errorlevel%
if %rc%==0 goto up
rem 2 is a usage error (a bad port): probing again would not help.
if %rc%==2 exit /b 2
if %n% geq %tries% goto down
rem Wait a second.  ping waits one second between its echoes; timeout /t
rem refuses to run when input is redirected, as it is in scheduled tasks.
ping -n 2 127.0.0.1 >nul
goto probe

:up
echo %host% %port%: up after %n% probe(s)
exit /b 0

:down
echo %host% %port%: still down after %n% probe(s) 1>&2
exit /b 1
