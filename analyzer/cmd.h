/* SPDX-License-Identifier: MIT */
/*
 * cmd.h - the subcommands of the heapprof command. Each takes the
 * arguments after the subcommand's name (argv[0] is the name) and returns
 * the process exit status.
 */
#ifndef HP_CMD_H
#define HP_CMD_H

int cmd_run(int argc, char **argv);
int cmd_collect(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_diff(int argc, char **argv);
int cmd_snapshot(int argc, char **argv);
int cmd_advise(int argc, char **argv);

#endif
