@echo off
rem recvfile.cmd [ADDR:]PORT FILE [IDLE]
rem Receive one connection's data into FILE: wait for a sender on
rem [ADDR:]PORT (sendfile.cmd, or "iocptool connect HOST PORT < FILE"),
rem write what it sends to FILE.part, and rename it to FILE once the sender
rem has closed the connection.  A sender silent for IDLE seconds (default
rem 30) is cut off.  Exit 0 with FILE in place; 1 when the transfer failed
rem or brought no byte (FILE is left alone); 2 for bad arguments.
rem See docs/SCRIPTING.md.
setlocal
if "%~2"=="" (
  echo usage: recvfile [ADDR:]PORT FILE [IDLE] 1>&2
  exit /b 2
)
set "part=%~2.part"
set "idle=%~3"
if "%idle%"=="" set idle=30

rem <nul: nothing to send back, so the connection is half-closed at once
rem and ends when the sender's data has all arrived.  > is binary-safe.
iocptool listen -i %idle% %1 <nul >"%part%"
set rc=%errorlevel%
if not %rc%==0 goto failed
for %%f in ("%part%") do set size=%%~zf
if "%size%"=="0" goto empty
move /y "%part%" "%~2" >nul
echo recvfile: received %~nx2 (%size% bytes)
exit /b 0

:failed
echo recvfile: the transfer failed, status %rc% 1>&2
del "%part%" 2>nul
exit /b %rc%

:empty
echo recvfile: the sender sent nothing 1>&2
del "%part%" 2>nul
exit /b 1
