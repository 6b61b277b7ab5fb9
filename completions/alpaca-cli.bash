_alpaca_cli_completion() {
    local IFS=$'
'
    COMPREPLY=( $( env COMP_WORDS="${COMP_WORDS[*]}" \
                   COMP_CWORD=$COMP_CWORD \
                   _ALPACA_CLI_COMPLETE=complete_bash $1 ) )
    return 0
}

complete -o default -F _alpaca_cli_completion alpaca-cli
