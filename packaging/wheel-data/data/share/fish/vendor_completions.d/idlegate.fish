# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_idlegate_global_optspecs
    string join \n config= listen= upstream= idle-timeout= max-lifetime= reconnect-grace= app-kind= base-path= log-format= log-level= h/help V/version
end

function __fish_idlegate_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_idlegate_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_idlegate_using_subcommand
    set -l cmd (__fish_idlegate_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c idlegate -n "__fish_idlegate_needs_command" -l config -d 'TOML config file' -r -F
complete -c idlegate -n "__fish_idlegate_needs_command" -l listen -d 'Address to listen on (`listen`), e.g. 0.0.0.0:8080' -r
complete -c idlegate -n "__fish_idlegate_needs_command" -l upstream -d 'URL of an app that is already running (`upstream`), e.g. http://127.0.0.1:8501' -r
complete -c idlegate -n "__fish_idlegate_needs_command" -l idle-timeout -d 'End a tab after this long without human activity (`tabs.idle_timeout`), e.g. 15m; "off" disables' -r
complete -c idlegate -n "__fish_idlegate_needs_command" -l max-lifetime -d 'End a tab this long after it started (`tabs.max_lifetime`), e.g. 8h; "off" disables' -r
complete -c idlegate -n "__fish_idlegate_needs_command" -l reconnect-grace -d 'How long a disconnected tab may come back (`tabs.reconnect_grace`), e.g. 15s' -r
complete -c idlegate -n "__fish_idlegate_needs_command" -l app-kind -d 'The app\'s framework (`app.kind`): auto (the command tells), streamlit, shiny, panel, bokeh or gradio' -r
complete -c idlegate -n "__fish_idlegate_needs_command" -l base-path -d 'URL path prefix of the app (`app.base_path`), e.g. /analytics' -r
complete -c idlegate -n "__fish_idlegate_needs_command" -l log-format -d 'Log format (`log.format`): text or json' -r
complete -c idlegate -n "__fish_idlegate_needs_command" -l log-level -d 'Log level or filter (`log.level`), e.g. info or debug' -r
complete -c idlegate -n "__fish_idlegate_needs_command" -s h -l help -d 'Print help'
complete -c idlegate -n "__fish_idlegate_needs_command" -s V -l version -d 'Print version'
complete -c idlegate -n "__fish_idlegate_needs_command" -a "hash-password" -d 'Reads a password from standard input (one line) and prints its Argon2id hash, for a `name:hash` line of `login.users_file`'
complete -c idlegate -n "__fish_idlegate_needs_command" -a "check-config" -d 'Checks a config file, with the `IDLEGATE_*` environment variables on top as at start, and prints the effective configuration as TOML with secrets redacted. Exits 0 when it is valid, 2 with a line naming the bad key when not. For CI pipelines and Helm or Kustomize users'
complete -c idlegate -n "__fish_idlegate_needs_command" -a "completions" -d 'Prints the shell completion script for SHELL (bash, zsh, fish, elvish or powershell) to standard output. The wheel and the container image install them already'
complete -c idlegate -n "__fish_idlegate_needs_command" -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c idlegate -n "__fish_idlegate_using_subcommand hash-password" -s h -l help -d 'Print help'
complete -c idlegate -n "__fish_idlegate_using_subcommand check-config" -s h -l help -d 'Print help'
complete -c idlegate -n "__fish_idlegate_using_subcommand completions" -s h -l help -d 'Print help'
complete -c idlegate -n "__fish_idlegate_using_subcommand help; and not __fish_seen_subcommand_from hash-password check-config completions help" -f -a "hash-password" -d 'Reads a password from standard input (one line) and prints its Argon2id hash, for a `name:hash` line of `login.users_file`'
complete -c idlegate -n "__fish_idlegate_using_subcommand help; and not __fish_seen_subcommand_from hash-password check-config completions help" -f -a "check-config" -d 'Checks a config file, with the `IDLEGATE_*` environment variables on top as at start, and prints the effective configuration as TOML with secrets redacted. Exits 0 when it is valid, 2 with a line naming the bad key when not. For CI pipelines and Helm or Kustomize users'
complete -c idlegate -n "__fish_idlegate_using_subcommand help; and not __fish_seen_subcommand_from hash-password check-config completions help" -f -a "completions" -d 'Prints the shell completion script for SHELL (bash, zsh, fish, elvish or powershell) to standard output. The wheel and the container image install them already'
complete -c idlegate -n "__fish_idlegate_using_subcommand help; and not __fish_seen_subcommand_from hash-password check-config completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
