#!/usr/bin/env bash
# Installs the servers the integration tests talk to (Debian packages): the mosquitto MQTT
# broker (and its clients, for mosquitto_passwd), InfluxDB 1.x and VictoriaMetrics (which
# speaks the InfluxDB 2 write API). The tests start their own instances on loopback ports; the
# packages' system services are not used. curl and openssl make the test certificates and
# drive the InfluxDB setup script. Does nothing when everything is already installed.
set -euo pipefail
missing=()
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v influxd >/dev/null || missing+=(influxdb)
command -v victoria-metrics >/dev/null || missing+=(victoria-metrics)
command -v mosquitto_passwd >/dev/null || missing+=(mosquitto-clients)
command -v curl >/dev/null || missing+=(curl)
command -v openssl >/dev/null || missing+=(openssl)
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi
echo "installing ${missing[*]}" >&2
run_as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "need root to install ${missing[*]} (tests that need them fail in CI)" >&2
        return 1
    fi
}
export DEBIAN_FRONTEND=noninteractive
run_as_root apt-get update -qq || true
run_as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
