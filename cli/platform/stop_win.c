/* SPDX-License-Identifier: MIT */
/*
 * stop.h on Windows.  Ctrl-C and Ctrl-Break (and closing the console
 * window, logging off, shutting down) reach a console program as calls of
 * a control handler on a thread the system creates; the handler only
 * queues which event came and sets an event object, and the main thread
 * waiting in stop_wait() does the safe stop.  A callback wakes it through
 * the same queue.  The events are reported with the numbers of POSIX
 * signals (Ctrl-C as SIGINT, Ctrl-Break as SIGTERM, closing the console as
 * SIGHUP's 1) so that the callers of stop_wait(), and the exit statuses
 * built from them, read them as on POSIX.  A process started with Ctrl-C
 * disabled (CREATE_NEW_PROCESS_GROUP, `start /b`) never sees it, as a
 * POSIX program started with SIGINT ignored.
 */
#include "stop.h"

#include <signal.h>

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#define STOP_SIGHUP 1 /* POSIX's number; the C library here has no SIGHUP */

/* What came, oldest first: a few slots are enough, more of the same adds
 * nothing.  Written by the handler thread and stop_wake() callers, read
 * by the main thread, under the lock. */
#define QUEUE_LEN 8
static CRITICAL_SECTION lock;
static int queue[QUEUE_LEN];
static unsigned head, count;
static HANDLE stop_event;

static void push(int what)
{
    EnterCriticalSection(&lock);
    if (count < QUEUE_LEN)
        queue[(head + count++) % QUEUE_LEN] = what;
    LeaveCriticalSection(&lock);
    SetEvent(stop_event);
}

static BOOL WINAPI on_console_event(DWORD type)
{
    switch (type) {
    case CTRL_C_EVENT:
        push(SIGINT);
        return TRUE;
    case CTRL_BREAK_EVENT:
        push(SIGTERM);
        return TRUE;
    default:
        /* Close, logoff, shutdown: the process ends when this returns, so
         * give the main thread time to stop safely; the system ends the
         * process after a few seconds in any case. */
        push(STOP_SIGHUP);
        Sleep(5000);
        return TRUE;
    }
}

int stop_prepare(void)
{
    if (stop_event)
        return 0;
    InitializeCriticalSection(&lock);
    stop_event = CreateEventW(NULL, FALSE, FALSE, NULL);
    if (!stop_event)
        return -1;
    SetConsoleCtrlHandler(on_console_event, TRUE);
    return 0;
}

int stop_wait(int timeout_ms)
{
    ULONGLONG end = GetTickCount64() + (ULONGLONG)(timeout_ms < 0 ? 0 : timeout_ms);
    for (;;) {
        EnterCriticalSection(&lock);
        if (count > 0) {
            int what = queue[head];
            head = (head + 1) % QUEUE_LEN;
            count--;
            LeaveCriticalSection(&lock);
            return what;
        }
        LeaveCriticalSection(&lock);
        DWORD wait = INFINITE;
        if (timeout_ms >= 0) {
            ULONGLONG now = GetTickCount64();
            if (now >= end)
                return STOP_TIMEOUT;
            wait = (DWORD)(end - now);
        }
        /* The event is auto-reset and only says "look at the queue". */
        if (WaitForSingleObject(stop_event, wait) == WAIT_FAILED)
            return STOP_TIMEOUT;
    }
}

void stop_wake(void)
{
    push(STOP_WOKEN);
}
