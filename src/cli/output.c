#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static void say_stdout(struct qvm_ui *ui, const char *msg)
{
    fprintf(stdout, "%s\n", msg);
    fflush(stdout);
}

static void say_stderr(struct qvm_ui *ui, const char *msg)
{
    fprintf(stderr, "%s\n", msg);
}

static void warn_stderr(struct qvm_ui *ui, const char *msg)
{
    fprintf(stderr, "warning: %s\n", msg);
}

int cli_open(struct cli *cli)
{
    memset(&cli->ui, 0, sizeof cli->ui);
    /* With --json, stdout carries only the JSON document: progress goes to
     * stderr so scripts can still watch it. */
    cli->ui.say = cli->quiet ? NULL : cli->json ? say_stderr : say_stdout;
    cli->ui.warn = warn_stderr;
    cli->ui.show_progress = !cli->quiet && !cli->json && isatty(STDOUT_FILENO);
    struct qvm_error err = { 0 };
    if (qvm_ctx_init(&cli->ctx, cli->root, &cli->ui, &err) < 0)
        return cli_fail("starting qvm", &err);
    return 0;
}

void cli_close(struct cli *cli)
{
    qvm_ctx_release(&cli->ctx);
}

int cli_fail(const char *task, const struct qvm_error *err)
{
    fprintf(stderr, "Error %s: %s\n", err->task ? err->task : task,
            err->msg[0] ? err->msg : "unknown error");
    return 1;
}

int cli_usage(const struct cli_command *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "qvm %s: ", cmd->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    /* The synopsis is the help text's first paragraph. */
    const char *end = strstr(cmd->help, "\n\n");
    fprintf(stderr, "%.*s\nTry 'qvm %s --help' for more.\n",
            end ? (int)(end - cmd->help) : (int)strlen(cmd->help), cmd->help, cmd->name);
    return 1;
}

bool cli_want_help(const struct cli_command *cmd, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(cmd->help, stdout);
            return true;
        }
    }
    return false;
}

void cli_print_json(json_object *o)
{
    puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
}

void cli_human_size(unsigned long long bytes, char *buf, size_t len)
{
    const char *units = "BKMGTP";
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%lluB", bytes);
    else
        snprintf(buf, len, v < 10 ? "%.1f%c" : "%.0f%c", v, units[u]);
}

bool cli_common_option(struct cli *cli, int c, const char *arg)
{
    switch (c) {
    case 0x101: cli->json = true; return true;
    case 0x102: cli->quiet = true; return true;
    case 0x103: cli->root = arg; return true;
    default: return false;
    }
}

int cli_operand_count(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = { CLI_COMMON_OPTIONS, { 0 } };
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1)
        if (!cli_common_option(cli, c, optarg))
            return -1;
    return argc - optind;
}
