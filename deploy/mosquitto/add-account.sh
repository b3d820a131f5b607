#!/usr/bin/env bash
# Adds an account to mosquitto's password file with a new random password, and writes that
# password to a file only its owner can read: the station's [sinks.mqtt] password_file, or
# the file a researcher passes to `cellrig --broker-password-file`.
#
#   add-account.sh PASSWORD_FILE NAME PASSWORD_OUT
#
# PASSWORD_FILE is created if it does not exist; an existing NAME gets the new password.
# The password never appears on a command line (mosquitto_passwd reads it from its input).
# Reload the broker afterwards (systemctl reload mosquitto, or send it SIGHUP).
set -euo pipefail
if [ "$#" -ne 3 ]; then
    echo "usage: $0 PASSWORD_FILE NAME PASSWORD_OUT" >&2
    exit 2
fi
password_file=$1 name=$2 out=$3
case "$name" in
    *[!A-Za-z0-9_.-]*|"") echo "$0: $name: use letters, digits, '-', '_' and '.'" >&2; exit 2;;
esac
command -v mosquitto_passwd >/dev/null || { echo "$0: mosquitto_passwd is not installed" >&2; exit 1; }
password=$(head -c 24 /dev/urandom | base64 | tr -d '/+=' | head -c 32)
create=()
[ -e "$password_file" ] || create=(-c)
umask 077
printf '%s\n%s\n' "$password" "$password" | mosquitto_passwd "${create[@]}" "$password_file" "$name" >/dev/null
printf '%s\n' "$password" > "$out"
# the broker reads the password file as its own user (group mosquitto on Debian)
if [ "$(id -u)" -eq 0 ] && getent group mosquitto >/dev/null; then
    chgrp mosquitto "$password_file" && chmod 640 "$password_file"
fi
echo "added $name to $password_file; its password is in $out (mode 600)" >&2
