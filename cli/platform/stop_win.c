/* SPDX-License-Identifier: MIT */
/*
 * stop.h on Windows.  Ctrl-C and Ctrl-Break (and closing the console
 * window, logging off, shutting down) reach a console program as calls of
 * a control handler on a thread the system creates; the handler only
 * records which event came and sets an event object, and the main thread
 * waiting in stop_wait() does the safe stop.  A callback wakes it through
 * the same event.  The events are reported with the numbers of the C
 * library's signals (SIGINT, SIGBREAK, SIGTERM) so that the callers of
 * stop_wait() read them as on POSIX.
 */
#include "stop.h"

#include <signal.h>

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

static HANDLE stop_event;
static volatile LONG stop_signal;

static BOOL WINAPI on_console_event(DWORD type)
{
    LONG sig;
    switch (type) {
    case CTRL_C_EVENT:
        sig = SIGINT;
        break;
    case CTRL_BREAK_EVENT:
        sig = SIGBREAK;
        break;
    default:
        /* Close, logoff, shutdown: the process ends when this returns. */
        sig = SIGTERM;
        break;
    }
    InterlockedExchange(&stop_signal, sig);
    SetEvent(stop_event);
    if (sig == SIGTERM) {
        /* Give the main thread time to stop safely; the system ends the
         * process after a few seconds in any case. */
        Sleep(5000);
    }
    return TRUE;
}

void stop_prepare(void)
{
    if (!stop_event)
        stop_event = CreateEventW(NULL, FALSE, FALSE, NULL);
    SetConsoleCtrlHandler(on_console_event, TRUE);
}

int stop_wait(void)
{
    WaitForSingleObject(stop_event, INFINITE);
    return (int)InterlockedExchange(&stop_signal, 0);
}

void stop_wake(void)
{
    SetEvent(stop_event);
}
