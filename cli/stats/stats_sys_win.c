/* SPDX-License-Identifier: MIT */
/*
 * stats_sys.h on Windows.  A process is gone when it cannot be opened
 * because no such PID exists, or when its handle is signalled.  Its command
 * line comes from NtQueryInformationProcess (ProcessCommandLineInformation,
 * Windows 8.1 and later), else from its PEB read with ReadProcessMemory,
 * else its image path stands in.  Interrupts are console control events,
 * as in stop_win.c; standard output takes ANSI sequences when it is a
 * console that has, or accepts, virtual terminal processing (Windows 10
 * and later; an older console gets plain repeated reports).
 */
#include "stats_sys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#include <winternl.h>

#ifndef ENABLE_VIRTUAL_TERMINAL_PROCESSING
#define ENABLE_VIRTUAL_TERMINAL_PROCESSING 0x0004
#endif

/* ProcessCommandLineInformation, which winternl.h does not name. */
#define PROCESS_COMMAND_LINE_CLASS 60

typedef NTSTATUS(NTAPI *query_process_fn)(HANDLE, PROCESSINFOCLASS, PVOID, ULONG, PULONG);

static HANDLE interrupt_event;
static volatile LONG interrupted;
static HANDLE console_out = INVALID_HANDLE_VALUE;
static DWORD console_mode;

bool stats_sys_process_gone(long pid)
{
    HANDLE h = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION | SYNCHRONIZE, FALSE, (DWORD)pid);
    if (!h)
        return GetLastError() == ERROR_INVALID_PARAMETER; /* no such PID */
    /* Open but ended: someone still holds a handle to it. */
    bool gone = WaitForSingleObject(h, 0) == WAIT_OBJECT_0;
    CloseHandle(h);
    return gone;
}

/* text (UTF-16, chars long) as UTF-8 into buf. */
static void to_utf8(const WCHAR *text, int chars, char *buf, size_t len)
{
    int n = WideCharToMultiByte(CP_UTF8, 0, text, chars, buf, (int)len - 1, NULL, NULL);
    buf[n > 0 ? n : 0] = '\0';
}

static bool command_from_query(query_process_fn query, HANDLE h, char *buf, size_t len)
{
    ULONG need = 0;
    union {
        UNICODE_STRING s;
        char bytes[8192];
    } info;
    if (!query ||
        query(h, (PROCESSINFOCLASS)PROCESS_COMMAND_LINE_CLASS, &info, sizeof info, &need) != 0)
        return false;
    to_utf8(info.s.Buffer, info.s.Length / 2, buf, len);
    return true;
}

/* The way that predates the information class: the PEB's process
 * parameters, read out of the other process. */
static bool command_from_peb(query_process_fn query, HANDLE h, char *buf, size_t len)
{
    PROCESS_BASIC_INFORMATION basic;
    ULONG need = 0;
    if (!query || query(h, ProcessBasicInformation, &basic, sizeof basic, &need) != 0 ||
        !basic.PebBaseAddress)
        return false;
    PEB peb;
    RTL_USER_PROCESS_PARAMETERS params;
    SIZE_T got;
    if (!ReadProcessMemory(h, basic.PebBaseAddress, &peb, sizeof peb, &got) ||
        !peb.ProcessParameters ||
        !ReadProcessMemory(h, peb.ProcessParameters, &params, sizeof params, &got))
        return false;
    WCHAR text[4096];
    SIZE_T bytes = params.CommandLine.Length;
    if (bytes > sizeof text)
        bytes = sizeof text;
    if (!params.CommandLine.Buffer ||
        !ReadProcessMemory(h, params.CommandLine.Buffer, text, bytes, &got))
        return false;
    to_utf8(text, (int)(got / 2), buf, len);
    return true;
}

void stats_sys_command_of(long pid, char *buf, size_t len)
{
    buf[0] = '\0';
    HANDLE h = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, (DWORD)pid);
    if (!h)
        return;
    query_process_fn query = (query_process_fn)(void (*)(void))GetProcAddress(
        GetModuleHandleA("ntdll.dll"), "NtQueryInformationProcess");
    bool done = command_from_query(query, h, buf, len);
    if (!done) {
        HANDLE full = OpenProcess(PROCESS_QUERY_INFORMATION | PROCESS_VM_READ, FALSE, (DWORD)pid);
        if (full) {
            done = command_from_peb(query, full, buf, len);
            CloseHandle(full);
        }
    }
    if (!done) {
        DWORD n = (DWORD)len;
        if (!QueryFullProcessImageNameA(h, 0, buf, &n))
            buf[0] = '\0';
    }
    CloseHandle(h);
}

static BOOL WINAPI on_console_event(DWORD type)
{
    (void)type;
    InterlockedExchange(&interrupted, 1);
    SetEvent(interrupt_event);
    return TRUE;
}

void stats_sys_catch_interrupts(void)
{
    if (!interrupt_event)
        interrupt_event = CreateEventW(NULL, TRUE, FALSE, NULL);
    SetConsoleCtrlHandler(on_console_event, TRUE);
}

bool stats_sys_interrupted(void)
{
    return InterlockedCompareExchange(&interrupted, 0, 0) != 0;
}

void stats_sys_sleep(unsigned ms)
{
    if (interrupt_event)
        WaitForSingleObject(interrupt_event, ms);
    else
        Sleep(ms);
}

bool stats_sys_stdout_terminal(void)
{
    DWORD mode;
    return GetConsoleMode(GetStdHandle(STD_OUTPUT_HANDLE), &mode) != 0;
}

static void restore_console(void)
{
    if (console_out != INVALID_HANDLE_VALUE)
        SetConsoleMode(console_out, console_mode);
}

bool stats_sys_stdout_ansi(void)
{
    HANDLE out = GetStdHandle(STD_OUTPUT_HANDLE);
    DWORD mode;
    if (!GetConsoleMode(out, &mode))
        return false; /* a file or a pipe */
    if (mode & ENABLE_VIRTUAL_TERMINAL_PROCESSING)
        return true;
    if (!SetConsoleMode(out, mode | ENABLE_VIRTUAL_TERMINAL_PROCESSING))
        return false;
    /* The console is the shell's too: leave it as it was. */
    console_out = out;
    console_mode = mode;
    atexit(restore_console);
    return true;
}
