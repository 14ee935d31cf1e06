/* SPDX-License-Identifier: MIT */
/*
 * The Windows runner: Windows has no fork(), so the tests run one after the
 * other in this process, and a fatal check leaves a test with longjmp.
 *
 * A test with a timeout gets a watchdog thread for its duration.  What a
 * child process would have contained cannot be contained here: a hang, a
 * crash (an unhandled exception or abort()) or a fatal check on a thread of
 * the test's own ends the whole run, after printing the failure and the
 * closing line with the tests that were not run.  .signal and .exit_code need
 * a process per test and such tests are skipped.
 */
#if defined(__MINGW32__) && !defined(__USE_MINGW_ANSI_STDIO)
#define __USE_MINGW_ANSI_STDIO 1
#endif

#include "minicrit_private.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

static DWORD test_thread_id;

void minicrit__mark_test_thread(void)
{
    test_thread_id = GetCurrentThreadId();
}

bool minicrit__on_test_thread(void)
{
    return GetCurrentThreadId() == test_thread_id;
}

_Noreturn static void end_run(void)
{
    fflush(NULL);
    TerminateProcess(GetCurrentProcess(), 1);
    /* TerminateProcess does not return when it targets the calling process. */
    abort();
}

_Noreturn void minicrit__stop_from_other_thread(void)
{
    minicrit__abandon(minicrit__current(),
                      "a fatal check failed off the test's thread; the run cannot go on");
    end_run();
}

static const char *exception_name(DWORD code)
{
    switch (code) {
    case EXCEPTION_ACCESS_VIOLATION:
        return "access violation";
    case EXCEPTION_ARRAY_BOUNDS_EXCEEDED:
        return "array bounds exceeded";
    case EXCEPTION_DATATYPE_MISALIGNMENT:
        return "misaligned access";
    case EXCEPTION_FLT_DIVIDE_BY_ZERO:
    case EXCEPTION_INT_DIVIDE_BY_ZERO:
        return "division by zero";
    case EXCEPTION_ILLEGAL_INSTRUCTION:
        return "illegal instruction";
    case EXCEPTION_STACK_OVERFLOW:
        return "stack overflow";
    case EXCEPTION_BREAKPOINT:
        return "breakpoint";
    default:
        return "exception";
    }
}

static LONG WINAPI on_crash(EXCEPTION_POINTERS *info)
{
    DWORD code = info->ExceptionRecord->ExceptionCode;
    minicrit__abandon(minicrit__current(), "crashed: exception 0x%08lx (%s)", (unsigned long)code,
                      exception_name(code));
    end_run();
}

static void on_abort(int sig)
{
    (void)sig;
    minicrit__abandon(minicrit__current(), "crashed: abort()");
    end_run();
}

void minicrit__platform_init(void)
{
    /* No error dialogs: a crash must end the process, not wait for a click. */
    SetErrorMode(SEM_FAILCRITICALERRORS | SEM_NOGPFAULTERRORBOX);
    SetUnhandledExceptionFilter(on_crash);
    signal(SIGABRT, on_abort);
}

struct watchdog {
    const struct minicrit_test *test;
    HANDLE done;
    DWORD ms;
    double timeout;
};

static DWORD WINAPI watchdog_main(void *arg)
{
    struct watchdog *w = arg;
    if (WaitForSingleObject(w->done, w->ms) == WAIT_TIMEOUT) {
        minicrit__abandon(w->test, "timed out after %g s", w->timeout);
        end_run();
    }
    return 0;
}

enum minicrit_verdict minicrit__run_isolated(const struct minicrit_test *t,
                                             const struct minicrit_suite *suite, double timeout)
{
    struct watchdog w = {.test = t, .timeout = timeout};
    HANDLE dog = NULL;
    enum minicrit_verdict v;

    if (t->opts.signal != 0 || t->opts.exit_code != 0) {
        minicrit__line("SKIP", t, NULL, 0, ".signal and .exit_code need fork()");
        return MINICRIT_SKIP;
    }
    if (timeout > 0) {
        w.ms = timeout * 1000 >= (double)INFINITE ? INFINITE - 1 : (DWORD)(timeout * 1000);
        w.done = CreateEventA(NULL, TRUE, FALSE, NULL);
        if (w.done)
            dog = CreateThread(NULL, 0, watchdog_main, &w, 0, NULL);
        if (dog == NULL)
            minicrit__line("WARN", t, NULL, 0, "no watchdog (error %lu): timeout not enforced",
                           (unsigned long)GetLastError());
    }
    v = minicrit__run_body(t, suite);
    if (dog) {
        SetEvent(w.done);
        WaitForSingleObject(dog, INFINITE);
        CloseHandle(dog);
    }
    if (w.done)
        CloseHandle(w.done);
    return v;
}
