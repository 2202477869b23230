/*
 * pitrctl_cmds.h — the repository commands of pitrctl (pitrctl_pitr.c).
 * Each takes argv from its command name on and returns an exit status.
 */
#ifndef CAIRN_CLI_PITRCTL_CMDS_H
#define CAIRN_CLI_PITRCTL_CMDS_H

int pitr_cmd_archive(int argc, char **argv);
int pitr_cmd_backup(int argc, char **argv);
int pitr_cmd_list(int argc, char **argv);
int pitr_cmd_restore(int argc, char **argv);
int pitr_cmd_verify(int argc, char **argv);
int pitr_cmd_expire(int argc, char **argv);

extern const char pitr_archive_usage[], pitr_archive_help[];
extern const char pitr_backup_usage[], pitr_backup_help[];
extern const char pitr_list_usage[], pitr_list_help[];
extern const char pitr_restore_usage[], pitr_restore_help[];
extern const char pitr_verify_usage[], pitr_verify_help[];
extern const char pitr_expire_usage[], pitr_expire_help[];

#endif
