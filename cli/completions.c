/* SPDX-License-Identifier: MIT */
/*
 * `iocptool --completions bash|powershell|table`: the shell completion
 * scripts, written from the registry of subcommands (cmdtable.c) and so
 * from the very getopt_long tables the subcommands parse with.  The build
 * runs it to make iocptool.bash and _iocptool.ps1 (cmake/IocpCompletions.cmake).
 *
 * Both scripts do the same: `iocptool <TAB>` proposes the subcommands,
 * `iocptool CMD -<TAB>` its long options; after an option that takes a
 * value they propose what the value is (file names for --key, uring, epoll
 * and iocp for --backend, host names for --source, nothing for a number);
 * operands complete as the table says (host names for connect, a key file
 * for keygen, the pids of running servers for stats).  "--opt=VALUE" works
 * as "--opt VALUE".
 */
#include <stdbool.h>
#include <string.h>

#include "iocp.h"

#include "cmdtable.h"
#include "diag.h"

static const char *kind_name(enum cmd_complete k)
{
    switch (k) {
    case CMD_COMPLETE_FILE:
        return "file";
    case CMD_COMPLETE_HOST:
        return "host";
    case CMD_COMPLETE_WORDS:
        return "words";
    case CMD_COMPLETE_PID:
        return "pid";
    case CMD_COMPLETE_NONE:
        break;
    }
    return "none";
}

/* Write a template, "@@" replaced by value. */
static void put(FILE *out, const char *tmpl, const char *value)
{
    for (const char *at; (at = strstr(tmpl, "@@")) != NULL; tmpl = at + 2) {
        fwrite(tmpl, 1, (size_t)(at - tmpl), out);
        fputs(value, out);
    }
    fputs(tmpl, out);
}

/* ---- table: the registry as data, for the tests ---- */

/*
 *   command <TAB> NAME <TAB> FIRST <TAB> NEXT <TAB> SUMMARY
 *   option <TAB> CMD <TAB> --LONG <TAB> -S|- <TAB> METAVAR|-|? <TAB> KIND <TAB> WORDS|-
 *   refused <TAB> CMD <TAB> --LONG
 * for every subcommand, then every option of each (refused: one that the
 * parser knows only to refuse, left out of --help and the scripts).  A subcommand without a
 * table in this build has no option lines.  METAVAR is "-" for an option
 * without a value and "?" for one whose value the table of values lacks.
 */
static void write_table(FILE *out)
{
    for (size_t i = 0; i < cmd_table_len; i++) {
        const struct cmd_entry *c = &cmd_table[i];
        fprintf(out, "command\t%s\t%s\t%s\t%s\n", c->name, kind_name(c->first_operand),
                kind_name(c->next_operands), c->summary);
    }
    for (size_t i = 0; i < cmd_table_len; i++) {
        const struct cmd_entry *c = &cmd_table[i];
        for (const struct option *o = c->options; o && o->name; o++) {
            if (!cmd_option_listed(c, o)) {
                fprintf(out, "refused\t%s\t--%s\n", c->name, o->name);
                continue;
            }
            int s = cmd_short_of(o);
            char shortname[3] = {'-', (char)s, '\0'};
            const struct cmd_value *v = o->has_arg != no_argument ? cmd_value_of(o->name) : NULL;
            const char *metavar = o->has_arg == no_argument ? "-" : v ? v->metavar : "?";
            fprintf(out, "option\t%s\t--%s\t%s\t%s\t%s\t%s\n", c->name, o->name,
                    s ? shortname : "-", metavar, kind_name(v ? v->complete : CMD_COMPLETE_NONE),
                    v && v->words ? v->words : "-");
        }
    }
}

/* ---- bash ---- */

static const char bash_head[] =
    "# bash completion for iocptool                             -*- shell-script -*-\n"
    "#\n"
    "# Written by `iocptool --completions bash` (iocptool @@) from the option\n"
    "# tables iocptool parses its command line with: regenerate it, do not edit\n"
    "# it.  Installed as share/bash-completion/completions/iocptool; or source it.\n"
    "# It needs bash 4 and nothing from the bash-completion package.\n"
    "\n"
    "# _iocptool_files WORD: file names, directories with a slash.\n"
    "_iocptool_files()\n"
    "{\n"
    "    compopt -o filenames 2>/dev/null\n"
    "    mapfile -t COMPREPLY < <(compgen -f -- \"$1\")\n"
    "}\n"
    "\n"
    "# _iocptool_pids WORD: the pids of this user's running iocptool servers\n"
    "# that have a stats endpoint (the PID.sock sockets of the per-user\n"
    "# directory, where iocptool stats looks).\n"
    "_iocptool_pids()\n"
    "{\n"
    "    local dir f pid pids=()\n"
    "    if [[ ${XDG_RUNTIME_DIR-} == /* ]]; then\n"
    "        dir=$XDG_RUNTIME_DIR/iocptool\n"
    "    else\n"
    "        dir=/tmp/iocptool-$EUID\n"
    "    fi\n"
    "    for f in \"$dir\"/*.sock; do\n"
    "        pid=${f##*/}\n"
    "        pid=${pid%.sock}\n"
    "        if [[ -S $f && $pid =~ ^[0-9]+$ ]] && kill -0 \"$pid\" 2>/dev/null; then\n"
    "            pids+=(\"$pid\")\n"
    "        fi\n"
    "    done\n"
    "    mapfile -t COMPREPLY < <(compgen -W \"${pids[*]-}\" -- \"$1\")\n"
    "}\n"
    "\n"
    "# _iocptool_arg CMD WORD: when WORD is an option of CMD that takes a value,\n"
    "# set arg to what the value completes to (none, file, host, words; words\n"
    "# to the words) and succeed.\n"
    "_iocptool_arg()\n"
    "{\n"
    "    arg='' words=''\n"
    "    case $1 in\n";

static const char bash_body[] =
    "    esac\n"
    "    [[ -n $arg ]]\n"
    "}\n"
    "\n"
    "_iocptool()\n"
    "{\n"
    "    local cur prev pre='' cmd='' opts='' first=none next=none arg='' words='' i w n=0\n"
    "    local dashdash=''\n"
    "    COMPREPLY=()\n"
    "    cur=${COMP_WORDS[COMP_CWORD]-}\n"
    "    prev=''\n"
    "    ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}\n"
    "    # --opt=VALUE comes as three words when COMP_WORDBREAKS has '=' (the\n"
    "    # default), or as one; the value alone is completed.\n"
    "    if [[ $cur == = && $prev == --* ]]; then\n"
    "        cur=''\n"
    "    elif [[ $prev == = ]] && ((COMP_CWORD > 1)) &&\n"
    "        [[ ${COMP_WORDS[COMP_CWORD - 2]} == --* ]]; then\n"
    "        prev=${COMP_WORDS[COMP_CWORD - 2]}\n"
    "    elif [[ $cur == --*=* ]]; then\n"
    "        prev=${cur%%=*}\n"
    "        pre=$prev=\n"
    "        cur=${cur#*=}\n"
    "    fi\n"
    "\n"
    "    # The subcommand: the first word that is not an option.\n"
    "    for ((i = 1; i < COMP_CWORD; i++)); do\n"
    "        w=${COMP_WORDS[i]}\n"
    "        if [[ $w != -* && $w != = ]]; then\n"
    "            cmd=$w\n"
    "            break\n"
    "        fi\n"
    "    done\n"
    "    if [[ -z $cmd ]]; then\n"
    "        if [[ $cur == -* ]]; then\n"
    "            mapfile -t COMPREPLY < <(compgen -W '--help --version' -- \"$cur\")\n"
    "        else\n"
    "            mapfile -t COMPREPLY < <(compgen -W '@@' -- \"$cur\")\n"
    "        fi\n"
    "        return 0\n"
    "    fi\n"
    "\n"
    "    case $cmd in\n";

static const char bash_tail[] =
    "    *) return 0 ;;\n"
    "    esac\n"
    "\n"
    "    # Count the operands before the word, skipping options and their values.\n"
    "    for ((i = i + 1; i < COMP_CWORD; i++)); do\n"
    "        w=${COMP_WORDS[i]}\n"
    "        if [[ -n $dashdash || $w != -?* ]]; then\n"
    "            [[ $w != = ]] && n=$((n + 1))\n"
    "        elif [[ $w == -- ]]; then\n"
    "            dashdash=1\n"
    "        elif [[ $w != --*=* ]] && _iocptool_arg \"$cmd\" \"$w\"; then\n"
    "            # its value: the next word, or the one after an '=' word\n"
    "            ((i + 1 < COMP_CWORD)) && [[ ${COMP_WORDS[i + 1]} == = ]] && i=$((i + 1))\n"
    "            i=$((i + 1))\n"
    "        fi\n"
    "    done\n"
    "\n"
    "    if [[ -z $dashdash ]] && _iocptool_arg \"$cmd\" \"$prev\"; then\n"
    "        :\n"
    "    elif [[ -z $dashdash && $cur == -* ]]; then\n"
    "        mapfile -t COMPREPLY < <(compgen -W \"$opts\" -- \"$cur\")\n"
    "        return 0\n"
    "    elif ((n == 0)); then\n"
    "        arg=$first\n"
    "    else\n"
    "        arg=$next\n"
    "    fi\n"
    "    case $arg in\n"
    "    file) _iocptool_files \"$cur\" ;;\n"
    "    host) mapfile -t COMPREPLY < <(compgen -A hostname -- \"$cur\") ;;\n"
    "    words) mapfile -t COMPREPLY < <(compgen -W \"$words\" -- \"$cur\") ;;\n"
    "    pid)\n"
    "        # stats also takes a socket PATH\n"
    "        case $cur in\n"
    "        /* | .* | ~*) _iocptool_files \"$cur\" ;;\n"
    "        *) _iocptool_pids \"$cur\" ;;\n"
    "        esac\n"
    "        ;;\n"
    "    esac\n"
    "    if [[ -n $pre ]] && ((${#COMPREPLY[@]})); then\n"
    "        COMPREPLY=(\"${COMPREPLY[@]/#/$pre}\")\n"
    "    fi\n"
    "    return 0\n"
    "}\n"
    "\n"
    "complete -F _iocptool iocptool\n";

/* "-k|--keep-open" or "--key": the words an option is typed as. */
static void bash_pattern(FILE *out, const struct option *o)
{
    int s = cmd_short_of(o);
    if (s)
        fprintf(out, "-%c|", s);
    fprintf(out, "--%s", o->name);
}

static void write_bash(FILE *out)
{
    put(out, bash_head, IOCP_VERSION_STRING);
    for (size_t i = 0; i < cmd_table_len; i++) {
        const struct cmd_entry *c = &cmd_table[i];
        bool any = false;
        for (const struct option *o = c->options; o && o->name; o++)
            any |= o->has_arg != no_argument && cmd_option_listed(c, o);
        if (!any)
            continue;
        fprintf(out, "    %s)\n        case $2 in\n", c->name);
        for (const struct option *o = c->options; o && o->name; o++) {
            if (o->has_arg == no_argument || !cmd_option_listed(c, o))
                continue;
            const struct cmd_value *v = cmd_value_of(o->name);
            enum cmd_complete k = v ? v->complete : CMD_COMPLETE_NONE;
            fprintf(out, "        ");
            bash_pattern(out, o);
            fprintf(out, ") arg='%s'", kind_name(k));
            if (k == CMD_COMPLETE_WORDS)
                fprintf(out, " words='%s'", v->words);
            fprintf(out, " ;;\n");
        }
        fprintf(out, "        esac\n        ;;\n");
    }

    char names[256] = "";
    size_t len = 0;
    for (size_t i = 0; i < cmd_table_len; i++) {
        int n = snprintf(names + len, sizeof names - len, "%s%s", i ? " " : "", cmd_table[i].name);
        if (n > 0 && (size_t)n < sizeof names - len)
            len += (size_t)n;
    }
    put(out, bash_body, names);

    for (size_t i = 0; i < cmd_table_len; i++) {
        const struct cmd_entry *c = &cmd_table[i];
        fprintf(out, "    %s)\n        opts='", c->name);
        const char *sep = "";
        for (const struct option *o = c->options; o && o->name; o++) {
            if (!cmd_option_listed(c, o))
                continue;
            fprintf(out, "%s--%s", sep, o->name);
            sep = " ";
        }
        fprintf(out, "'\n        first=%s next=%s\n        ;;\n", kind_name(c->first_operand),
                kind_name(c->next_operands));
    }
    fputs(bash_tail, out);
}

/* ---- PowerShell ---- */

/* A PowerShell single-quoted string: ' doubles. */
static void ps_quote(FILE *out, const char *s)
{
    fputc('\'', out);
    for (; *s; s++) {
        if (*s == '\'')
            fputc('\'', out);
        fputc(*s, out);
    }
    fputc('\'', out);
}

static const char ps_head[] =
    "# PowerShell completion for iocptool\n"
    "#\n"
    "# Written by `iocptool --completions powershell` (iocptool @@) from the\n"
    "# option tables iocptool parses its command line with: regenerate it, do not\n"
    "# edit it.  Load it from your profile (notepad $PROFILE):\n"
    "#     . C:\\path\\to\\_iocptool.ps1\n"
    "# Windows PowerShell 5.1 and PowerShell 7.\n"
    "\n"
    "Register-ArgumentCompleter -Native -CommandName 'iocptool', 'iocptool.exe' -ScriptBlock {\n"
    "    param($wordToComplete, $commandAst, $cursorPosition)\n"
    "\n"
    "    # The subcommands, and what their first and further operands complete to.\n"
    "    $commands = @(\n";

static const char ps_body[] =
    "    )\n"
    "\n"
    "    # The options: subcommand, long and short name, value as --help names\n"
    "    # it ('' when it takes none), what the value completes to.\n"
    "    $options = @(\n";

static const char ps_tail[] =
    "    )\n"
    "\n"
    "    $results = "
    "[System.Collections.Generic.List[System.Management.Automation.CompletionResult]]::new()\n"
    "    function Add-Result([string]$text, [string]$list, [string]$type, [string]$tip) {\n"
    "        $results.Add([System.Management.Automation.CompletionResult]::new($text, $list, "
    "$type, $tip))\n"
    "    }\n"
    "\n"
    "    # The words before the one being completed.\n"
    "    $before = @($commandAst.CommandElements |\n"
    "        Where-Object { $_.Extent.EndOffset -lt $cursorPosition } |\n"
    "        ForEach-Object { $_.Extent.Text })\n"
    "\n"
    "    # The subcommand: the first word that is not an option.\n"
    "    $cmd = $null\n"
    "    $at = 0\n"
    "    for ($i = 1; $i -lt $before.Count; $i++) {\n"
    "        if (-not $before[$i].StartsWith('-')) {\n"
    "            $cmd = $before[$i]\n"
    "            $at = $i\n"
    "            break\n"
    "        }\n"
    "    }\n"
    "    if (-not $cmd) {\n"
    "        if ($wordToComplete.StartsWith('-')) {\n"
    "            foreach ($o in @('--help', '--version')) {\n"
    "                if ($o -clike \"$wordToComplete*\") { Add-Result $o $o 'ParameterName' $o }\n"
    "            }\n"
    "        } else {\n"
    "            foreach ($c in $commands) {\n"
    "                if ($c.Name -clike \"$wordToComplete*\") { Add-Result $c.Name $c.Name "
    "'Command' $c.Summary }\n"
    "            }\n"
    "        }\n"
    "        return $results\n"
    "    }\n"
    "    $command = $commands | Where-Object { $_.Name -ceq $cmd } | Select-Object -First 1\n"
    "    if (-not $command) { return }\n"
    "    $mine = @($options | Where-Object { $_.Cmd -ceq $cmd })\n"
    "    function Find-Option([string]$word) {\n"
    "        $mine | Where-Object { $_.Value -ne '' -and ($_.Long -ceq $word -or ($_.Short -ne '' "
    "-and $_.Short -ceq $word)) } |\n"
    "            Select-Object -First 1\n"
    "    }\n"
    "\n"
    "    # Count the operands before the word, skipping options and their values.\n"
    "    $operands = 0\n"
    "    $dashdash = $false\n"
    "    for ($i = $at + 1; $i -lt $before.Count; $i++) {\n"
    "        $w = $before[$i]\n"
    "        if ($dashdash -or -not $w.StartsWith('-') -or $w -eq '-') {\n"
    "            $operands++\n"
    "        } elseif ($w -eq '--') {\n"
    "            $dashdash = $true\n"
    "        } elseif (-not $w.Contains('=') -and (Find-Option $w)) {\n"
    "            $i++\n"
    "        }\n"
    "    }\n"
    "\n"
    "    $prefix = ''\n"
    "    $value = $wordToComplete\n"
    "    $prev = if ($before.Count -gt 0) { $before[$before.Count - 1] } else { '' }\n"
    "    if (-not $dashdash -and $wordToComplete -match '^(--[^=]+)=(.*)$') {\n"
    "        $prev = $Matches[1]\n"
    "        $prefix = $prev + '='\n"
    "        $value = $Matches[2]\n"
    "    }\n"
    "    $opt = if ($dashdash) { $null } else { Find-Option $prev }\n"
    "    if ($opt) {\n"
    "        $kind = $opt.Complete\n"
    "        $words = $opt.Words\n"
    "    } elseif (-not $dashdash -and $wordToComplete.StartsWith('-')) {\n"
    "        foreach ($o in $mine) {\n"
    "            if ($o.Long -clike \"$wordToComplete*\") {\n"
    "                $tip = if ($o.Short) { \"$($o.Short), $($o.Long)\" } else { $o.Long }\n"
    "                if ($o.Value) { $tip += ' ' + $o.Value }\n"
    "                Add-Result $o.Long $o.Long 'ParameterName' $tip\n"
    "            }\n"
    "        }\n"
    "        return $results\n"
    "    } else {\n"
    "        $kind = if ($operands -eq 0) { $command.First } else { $command.Next }\n"
    "        $words = ''\n"
    "    }\n"
    "\n"
    "    switch ($kind) {\n"
    "        'file' {\n"
    "            foreach ($r in "
    "[System.Management.Automation.CompletionCompleters]::CompleteFilename($value)) {\n"
    "                Add-Result ($prefix + $r.CompletionText) $r.ListItemText $r.ResultType "
    "$r.ToolTip\n"
    "            }\n"
    "        }\n"
    "        'words' {\n"
    "            foreach ($w in $words.Split(' ')) {\n"
    "                if ($w -clike \"$value*\") { Add-Result ($prefix + $w) $w 'ParameterValue' $w "
    "}\n"
    "            }\n"
    "        }\n"
    "        'pid' {\n"
    "            # The servers with a stats endpoint: PID.sock or PID.tcp in the\n"
    "            # per-user directory (%LOCALAPPDATA%\\iocptool; on Linux\n"
    "            # $XDG_RUNTIME_DIR/iocptool), of a process that still runs.\n"
    "            $dirs = @()\n"
    "            if ($env:LOCALAPPDATA) { $dirs += Join-Path $env:LOCALAPPDATA 'iocptool' }\n"
    "            if ($env:XDG_RUNTIME_DIR) { $dirs += Join-Path $env:XDG_RUNTIME_DIR 'iocptool' }\n"
    "            $files = if ($dirs.Count -gt 0) { @(Get-ChildItem -LiteralPath $dirs -ErrorAction "
    "Ignore) } else { @() }\n"
    "            foreach ($f in $files) {\n"
    "                if ($f.Name -match '^([0-9]+)[.](sock|tcp)$' -and $Matches[1] -clike "
    "\"$value*\" -and\n"
    "                    (Get-Process -Id $Matches[1] -ErrorAction Ignore)) {\n"
    "                    Add-Result ($prefix + $Matches[1]) $Matches[1] 'ParameterValue' "
    "$f.FullName\n"
    "                }\n"
    "            }\n"
    "        }\n"
    "        'host' {\n"
    "            foreach ($h in @('localhost', '127.0.0.1', '::1')) {\n"
    "                if ($h -clike \"$value*\") { Add-Result ($prefix + $h) $h 'ParameterValue' $h "
    "}\n"
    "            }\n"
    "        }\n"
    "    }\n"
    "    return $results\n"
    "}\n";

static void write_powershell(FILE *out)
{
    put(out, ps_head, IOCP_VERSION_STRING);
    for (size_t i = 0; i < cmd_table_len; i++) {
        const struct cmd_entry *c = &cmd_table[i];
        fprintf(out,
                "        [pscustomobject]@{ Name = '%s'; First = '%s'; Next = '%s'; Summary = ",
                c->name, kind_name(c->first_operand), kind_name(c->next_operands));
        ps_quote(out, c->summary);
        fprintf(out, " }\n");
    }
    fputs(ps_body, out);
    for (size_t i = 0; i < cmd_table_len; i++) {
        const struct cmd_entry *c = &cmd_table[i];
        for (const struct option *o = c->options; o && o->name; o++) {
            if (!cmd_option_listed(c, o))
                continue;
            int s = cmd_short_of(o);
            char shortname[3] = {'-', (char)s, '\0'};
            const struct cmd_value *v = o->has_arg != no_argument ? cmd_value_of(o->name) : NULL;
            const char *metavar = o->has_arg == no_argument ? "" : v ? v->metavar : "VALUE";
            fprintf(out,
                    "        [pscustomobject]@{ Cmd = '%s'; Long = '--%s'; Short = '%s'; "
                    "Value = '%s'; Complete = '%s'; Words = '%s' }\n",
                    c->name, o->name, s ? shortname : "", metavar,
                    kind_name(v ? v->complete : CMD_COMPLETE_NONE), v && v->words ? v->words : "");
        }
    }
    fputs(ps_tail, out);
}

int completions_write(FILE *out, const char *shell)
{
    if (!strcmp(shell, "bash"))
        write_bash(out);
    else if (!strcmp(shell, "powershell"))
        write_powershell(out);
    else if (!strcmp(shell, "table"))
        write_table(out);
    else {
        diag_error("--completions: %s: bash, powershell or table", shell);
        return EXIT_USAGE;
    }
    if (fflush(out) != 0 || ferror(out)) {
        diag_error("--completions: cannot write the script");
        return EXIT_RUNTIME;
    }
    return EXIT_OK;
}
