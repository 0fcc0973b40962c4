#!/bin/sh
# One client connection of hoist-test/db; a line protocol:
#   PUT <text>  append <text> to /data/log  -> "OK <records>"
#   GET         every record, then "END"
#   COUNT       -> "<records>"
#   PING        -> "PONG"
#   QUIT        close the connection
while read -r cmd arg; do
    case $cmd in
        PUT) echo "$arg" >>/data/log; echo "OK $(wc -l </data/log)" ;;
        GET) cat /data/log; echo END ;;
        COUNT) wc -l </data/log ;;
        PING) echo PONG ;;
        QUIT) exit 0 ;;
        *) echo "ERR unknown command: $cmd" ;;
    esac
done
