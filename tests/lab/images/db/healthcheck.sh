#!/bin/sh
# The db's health probe: it answers PING on its port.
echo PING | nc -w 2 127.0.0.1 "${PORT:-5432}" | grep -q PONG
