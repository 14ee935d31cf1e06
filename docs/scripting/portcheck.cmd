@echo off
rem portcheck.cmd HOST PORT
rem Is a TCP port open?  Says so and exits with iocptool's own status:
rem   0  open
rem   1  closed, filtered (no answer within 3 s) or the host is unknown
rem   2  usage error: a bad port such as 70000, a missing argument
rem See docs/SCRIPTING.md.
setlocal
if "%~2"=="" (
  echo usage: portcheck HOST PORT 1>&2
  exit /b 2
)
rem connect -z prints "HOST PORT open" for an open port; the script says
rem it its own way, so that output goes to nul.  Messages (stderr) stay.
iocptool connect -z -w 3 %1 %2 >nul
set rc=%errorlevel%
if %rc%==0 echo %~1 %~2: open
if %rc%==1 echo %~1 %~2: closed
if %rc%==2 echo %~1 %~2: usage error
exit /b %rc%
