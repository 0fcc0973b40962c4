#!/bin/sh
# The app's health probe, usable as a Docker/Compose healthcheck: ["CMD", "/bin/healthcheck"].
exec wget -q -O- "http://127.0.0.1:${PORT:-80}/cgi-bin/health"
