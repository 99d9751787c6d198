#include "ui.h"

#include <stdarg.h>
#include <stdio.h>

void qvm_say(struct qvm_ui *ui, const char *fmt, ...)
{
    if (!ui || !ui->say)
        return;
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ui->say(ui, buf);
}

void qvm_warn(struct qvm_ui *ui, const char *fmt, ...)
{
    if (!ui || !ui->warn)
        return;
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ui->warn(ui, buf);
}
