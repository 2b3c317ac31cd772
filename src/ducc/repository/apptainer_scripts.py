"""The fixed Apptainer scripts written into every flat tree (same names and behaviour as DUCC's).

`actions/*` are the entry points Apptainer (and Singularity 2.x) run for `exec`, `run`,
`shell`, `start` and `test`; `env/*.sh` are sourced in name order before each of them.
None of these depend on the image: what comes from its config is built in `apptainer.py`.
"""

from __future__ import annotations

# Every action first sources the environment scripts in name order, as Apptainer does.
_SOURCE_ENV = """\
for script in /.singularity.d/env/*.sh; do
    if [ -f "$script" ]; then
        . "$script"
    fi
done
"""

_EXEC = f"""\
#!/bin/sh
{_SOURCE_ENV}
exec "$@"
"""

_RUN = f"""\
#!/bin/sh
{_SOURCE_ENV}
if [ -n "${{SINGULARITY_APPNAME:-}}" ]; then
    if [ -x "/scif/apps/${{SINGULARITY_APPNAME}}/scif/runscript" ]; then
        exec "/scif/apps/${{SINGULARITY_APPNAME}}/scif/runscript" "$@"
    fi
    echo "No runscript for contained app: ${{SINGULARITY_APPNAME}}" >&2
    exit 1
elif [ -x /.singularity.d/runscript ]; then
    exec /.singularity.d/runscript "$@"
fi
echo "No runscript found, executing /bin/sh" >&2
exec /bin/sh "$@"
"""

_SHELL = f"""\
#!/bin/sh
{_SOURCE_ENV}
if [ -n "${{SINGULARITY_SHELL:-}}" ] && [ -x "$SINGULARITY_SHELL" ]; then
    exec "$SINGULARITY_SHELL" "$@"
elif [ -x /bin/bash ]; then
    SHELL=/bin/bash
    PS1="Singularity ${{SINGULARITY_NAME:-}}:\\\\w> "
    export SHELL PS1
    exec /bin/bash --norc "$@"
elif [ -x /bin/sh ]; then
    SHELL=/bin/sh
    export SHELL
    exec /bin/sh "$@"
fi
echo "ERROR: /bin/sh does not exist in container" >&2
exit 1
"""

_START = f"""\
#!/bin/sh
# Tell the instance's PID 1 to continue; it waits for this signal.
kill -CONT 1
{_SOURCE_ENV}
if [ -x /.singularity.d/startscript ]; then
    exec /.singularity.d/startscript
fi
"""

_TEST = f"""\
#!/bin/sh
{_SOURCE_ENV}
if [ -n "${{SINGULARITY_APPNAME:-}}" ]; then
    if [ -x "/scif/apps/${{SINGULARITY_APPNAME}}/scif/test" ]; then
        exec "/scif/apps/${{SINGULARITY_APPNAME}}/scif/test" "$@"
    fi
    echo "No tests for contained app: ${{SINGULARITY_APPNAME}}" >&2
    exit 1
elif [ -x /.singularity.d/test ]; then
    exec /.singularity.d/test "$@"
fi
echo "No test found in container, executing /bin/sh -c true" >&2
exec /bin/sh -c true
"""

ACTIONS: dict[str, str] = {
    "exec": _EXEC,
    "run": _RUN,
    "shell": _SHELL,
    "start": _START,
    "test": _TEST,
}

_BASE_01 = """\
#!/bin/sh
# Base environment, sourced first.
"""

_ENVIRONMENT_90 = """\
#!/bin/sh
# Custom environment shell code should follow
"""

_APPS_95 = """\
#!/bin/sh
# Scientific Filesystem (SCIF) apps: put the active app first on PATH.
if [ -n "${SINGULARITY_APPNAME:-}" ]; then
    export SINGULARITY_APPNAME
    if [ -d "/scif/apps/${SINGULARITY_APPNAME}/" ]; then
        SCIF_APPS=/scif/apps
        SCIF_APPROOT="/scif/apps/${SINGULARITY_APPNAME}"
        export SCIF_APPROOT SCIF_APPS
        PATH="$SCIF_APPROOT:$PATH"
        if [ -d "$SCIF_APPROOT/bin" ]; then
            PATH="$SCIF_APPROOT/bin:$PATH"
        fi
        if [ -d "$SCIF_APPROOT/lib" ]; then
            LD_LIBRARY_PATH="$SCIF_APPROOT/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
            export LD_LIBRARY_PATH
        fi
        for script in "$SCIF_APPROOT/scif/env/01-base.sh" \\
                      "$SCIF_APPROOT/scif/env/90-environment.sh"; do
            if [ -f "$script" ]; then
                . "$script"
            fi
        done
        export PATH
    else
        echo "Could not locate the container application: ${SINGULARITY_APPNAME}" >&2
        exit 1
    fi
fi
"""

_BASE_99 = """\
#!/bin/sh
# Libraries Apptainer injects (GPU drivers with --nv) come last on the library path.
if [ -z "${LD_LIBRARY_PATH:-}" ]; then
    LD_LIBRARY_PATH=/.singularity.d/libs
else
    LD_LIBRARY_PATH="$LD_LIBRARY_PATH:/.singularity.d/libs"
fi
PS1="Singularity> "
export LD_LIBRARY_PATH PS1
"""

_RUNTIMEVARS_99 = """\
#!/bin/sh
# PATH changes asked for on the command line (--env PREPEND_PATH/APPEND_PATH/PATH).
if [ -n "${SING_USER_DEFINED_PREPEND_PATH:-}" ]; then
    PATH="${SING_USER_DEFINED_PREPEND_PATH}:${PATH}"
fi
if [ -n "${SING_USER_DEFINED_APPEND_PATH:-}" ]; then
    PATH="${PATH}:${SING_USER_DEFINED_APPEND_PATH}"
fi
if [ -n "${SING_USER_DEFINED_PATH:-}" ]; then
    PATH="${SING_USER_DEFINED_PATH}"
fi
unset SING_USER_DEFINED_PREPEND_PATH SING_USER_DEFINED_APPEND_PATH SING_USER_DEFINED_PATH
export PATH
"""

ENV_FILES: dict[str, str] = {
    "01-base.sh": _BASE_01,
    "90-environment.sh": _ENVIRONMENT_90,
    "95-apps.sh": _APPS_95,
    "99-base.sh": _BASE_99,
    "99-runtimevars.sh": _RUNTIMEVARS_99,
}

STARTSCRIPT = "#!/bin/sh\n"

# Links at the image root, as Singularity 2.x images carry them (name -> target).
ROOT_LINKS: dict[str, str] = {
    "singularity": ".singularity.d/runscript",
    ".run": ".singularity.d/actions/run",
    ".exec": ".singularity.d/actions/exec",
    ".test": ".singularity.d/actions/test",
    ".shell": ".singularity.d/actions/shell",
    "environment": ".singularity.d/env/90-environment.sh",
}
