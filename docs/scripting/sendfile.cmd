@echo off
rem sendfile.cmd FILE HOST PORT [TRIES]
rem Send FILE to HOST PORT, where a receiver runs (recvfile.cmd, or
rem "iocptool listen PORT > FILE" on Linux).  A refused or failed
rem connection is tried again, TRIES times in all (default 3), 2 s apart.
rem Exit 0 when the whole file went out and the receiver closed the
rem connection, 1 when every try failed, 2 for bad arguments or a missing
rem FILE.  See docs/SCRIPTING.md.
setlocal
if "%~3"=="" (
  echo usage: sendfile FILE HOST PORT [TRIES] 1>&2
  exit /b 2
)
if not exist "%~1" (
  echo sendfile: %~1: no such file 1>&2
  exit /b 2
)
set "tries=%~4"
if "%tries%"=="" set tries=3
set n=0

:send
set /a n+=1
rem < is binary-safe in cmd.  --send-only: nothing comes back to print.
rem -w 5: give up connecting after 5 s (a host that does not answer).
iocptool connect --send-only -w 5 %2 %3 < "%~1"
set rc=%errorlevel%
if %rc%==0 goto sent
rem 2: a usage error (a bad port, a bad --key file): no use trying again.
if %rc%==2 exit /b 2
if %n% geq %tries% goto failed
echo sendfile: try %n% failed, status %rc%; again in 2 s 1>&2
ping -n 3 127.0.0.1 >nul
goto send

:sent
echo sendfile: sent %~nx1 (%~z1 bytes) to %~2 %~3
exit /b 0

:failed
echo sendfile: %~nx1 not sent: %n% tries failed 1>&2
exit /b 1
