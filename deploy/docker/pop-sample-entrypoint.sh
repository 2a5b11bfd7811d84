#!/bin/sh
# Runs POP's sample handler and reports its result through the pod's
# annotations (spec §5.2), the way the fake cluster's test image does.
out=$(pop-sample-handler "$@" 2>&1); code=$?
printf '%s\n' "$out"
if [ $code -eq 0 ]; then
  payload=$(printf '%s\n' "$out" | sed -n 's/.*conclusionStatus=succeeded .* payload=//p')
  pop-pod-report result "$payload" || exit 5
fi
exit $code
