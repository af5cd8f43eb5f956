# shellcheck shell=bash
# ---------------------------------------------------------------------------
# deploygen env-file parser (templates/partials/env-file.sh)
#
# Reads an env file (for example .env.staging) as DATA. Nothing in the file is
# ever executed: no source, no eval, no command substitution of values, no
# printf with file content as the format. Included verbatim into the generated
# scripts (Handlebars partial), so this file must never contain two opening
# curly braces in a row. Requires bash 4.3+ (namerefs), safe under
# `set -euo pipefail`, independent of the caller's locale and of the
# nocasematch shell option.
#
# dg_env_load FILE ARRAY_NAME
#   Parses FILE into the associative array ARRAY_NAME (declared by the caller
#   with `declare -A`). Entries already in the array that the file does not
#   set are kept; a key set by the file overwrites them. Returns 0 on success.
#   On any line it refuses it prints `FILE:LINE: <what is wrong>; <how to fix>`
#   to stderr and returns 1 WITHOUT assigning anything (all or nothing).
#   Returns 1 with `FILE: ...` when FILE cannot be read, 2 on a usage error
#   (ARRAY_NAME not an associative array, or starting with the reserved
#   prefix dg__ used by this file's own variables).
#
# dg_env_file_mode_warning FILE
#   Prints one line to stdout (no colour, no "warning:" prefix: the caller
#   adds its own) when FILE is readable by group or others (stat -c %a),
#   suggesting `chmod 600 FILE`. Prints nothing otherwise (also when FILE
#   does not exist). Always returns 0.
#
# Accepted syntax -- the common ground of dotenv 17 `parse()` (used by the
# deploygen CLI) and Node's `util.parseEnv()` (Node 20.12+). Every file this
# parser accepts gives the same keys and values as both of them:
#   KEY=value            KEY matches ^[A-Za-z_][A-Za-z0-9_]*$
#   export KEY=value     exactly one space after `export`
#   spaces (not tabs) before the key, around `=` and around the value are
#   ignored; `KEY=` is the empty string; `=` may appear inside values
#   empty lines and lines starting with `#` are ignored
#   unquoted values end at the first `#` (anywhere, with or without a space
#   before it); quotes inside an unquoted value are literal (it's, a"b")
#   'single' and `backtick` quoted values are literal; "double" quoted values
#   turn each two-character sequence \n into a newline (and nothing else:
#   \t, \\ and \" stay as written). Quoted values keep `#`, spaces and may
#   span several lines; after the closing quote only spaces, tabs and an
#   optional `# comment` may follow
#   CRLF line endings are read as LF (also inside multi-line values)
#   a later duplicate key overrides an earlier one
#   Anything else is refused.
#
# Where dotenv and util.parseEnv disagree (observed with dotenv 17.4 and
# Node 20.20) this parser REFUSES the line with a message, except in the
# first case below, where it follows dotenv:
#   - `#KEY=v` as the last line without a trailing newline: Node creates a key
#     named `#KEY`; dotenv (and this parser) treat the line as a comment.
#   - a line of only spaces/tabs, or an indented `# comment`: when a line
#     follows, Node glues it onto the next key (that key is lost); dotenv
#     ignores it -> refused ("make it an empty line" / "remove the indent").
#   - a line without `=` (e.g. `KEY`, `KEY: value`, `export KEY`): dotenv
#     skips it (or reads `KEY: value` as a key), Node glues it onto the next
#     key -> refused.
#   - tabs (or other non-space whitespace: \v, \f, NBSP, U+2000..U+200A,
#     U+2028, U+2029, U+202F, U+205F, U+3000, U+FEFF, U+1680) before the key,
#     around `=`, after `export`, or at either end of an unquoted value:
#     dotenv strips them, Node keeps them (in the key or the value) ->
#     refused; more than one space after `export` likewise.
#   - a UTF-8 byte order mark at the start of the file: dotenv drops it, Node
#     makes it part of the first key -> refused.
#   - a carriage return not followed by a newline: dotenv reads it as a line
#     break, Node deletes it -> refused.
#   - text after a closing quote (`'a' b`, `"a""b"`, `''x`): dotenv takes the
#     whole line unquoted, Node takes the quoted part -> refused.
#   - a backslash right before the closing quote ('a\', "a\\"): dotenv's
#     regex may read \' / \" as an escaped quote and run on to a later quote;
#     Node never does -> refused (write the value unquoted instead).
#   - U+2028 / U+2029 (line and paragraph separators) in an unquoted value
#     or a comment: dotenv's regular expressions treat them as line ends (a
#     quoted part after one loses its quotes; `# c<U+2028>KEY=v` sets KEY),
#     Node does not -> refused (inside quotes they are fine).
#   - \r inside a double-quoted value: dotenv turns it into a carriage
#     return, Node keeps the two characters -> refused (use single quotes).
# Refused although dotenv and Node agree (both accept something that is
# almost certainly a mistake, or that a shell cannot hold):
#   - a quote that is never closed (`KEY="abc` and more lines): both keep
#     `"abc` literally (at the very end of the file Node drops the key).
#   - keys outside ^[A-Za-z_][A-Za-z0-9_]*$ (A.B, A-B, 1A, non-ASCII): both
#     accept most of them, but they cannot be exported to a process by a
#     shell or systemd.
#   - the key __proto__: dotenv and Node both drop it silently (JavaScript
#     object prototype), a shell would keep it.
#   - a NUL byte anywhere (bash variables cannot hold one).
# Not checked: bytes that are not valid UTF-8 are kept as they are (dotenv
# would read them as U+FFFD); values are compared byte for byte.
# ---------------------------------------------------------------------------

# dg__env_err FILE LINE WHAT FIX: print one refusal line to stderr.
dg__env_err() {
  printf '%s:%s: %s; %s\n' "$1" "$2" "$3" "$4" >&2
}

# dg__env_show TEXT: print TEXT quoted so that control bytes cannot reach the
# terminal (used to name a bad key in a message). Output in dg__shown.
dg__env_show() {
  printf -v dg__shown '%q' "$1"
}

# dg__env_has_js_space_edge TEXT: succeed when TEXT starts or ends with a
# character that JavaScript's trim() removes but that is not an ASCII space.
# Runs under LC_ALL=C (byte patterns).
dg__env_has_js_space_edge() {
  local t=$1 ws
  # Cheap pre-check on the first and last byte.
  case $t in
    [$'\t\v\f\xc2\xe1\xe2\xe3\xef']* | *[$'\t\v\f\xa0\x80\x81\x82\x83\x84\x85\x86\x87\x88\x89\x8a\xa8\xa9\xaf\x9f\xbf']) ;;
    *) return 1 ;;
  esac
  for ws in $'\t' $'\v' $'\f' $'\xc2\xa0' $'\xe1\x9a\x80' \
    $'\xe2\x80\x80' $'\xe2\x80\x81' $'\xe2\x80\x82' $'\xe2\x80\x83' \
    $'\xe2\x80\x84' $'\xe2\x80\x85' $'\xe2\x80\x86' $'\xe2\x80\x87' \
    $'\xe2\x80\x88' $'\xe2\x80\x89' $'\xe2\x80\x8a' $'\xe2\x80\xa8' \
    $'\xe2\x80\xa9' $'\xe2\x80\xaf' $'\xe2\x81\x9f' $'\xe3\x80\x80' \
    $'\xef\xbb\xbf'; do
    if [[ $t == "$ws"* || $t == *"$ws" ]]; then
      return 0
    fi
  done
  return 1
}

# dg__env_has_js_eol TEXT: succeed when TEXT contains U+2028 or U+2029, which
# JavaScript regular expressions treat as line ends (dotenv starts a new
# KEY=value match after one, even inside a comment). Runs under LC_ALL=C.
dg__env_has_js_eol() {
  [[ $1 == *$'\xe2\x80\xa8'* || $1 == *$'\xe2\x80\xa9'* ]]
}

dg__env_err_js_eol() {
  dg__env_err "$1" "$2" "U+2028/U+2029 (line or paragraph separator) in a $3 outside quotes, which dotenv reads as a line break" \
    'remove it, or put the value in quotes'
}

# dg__env_next_line: moves dg__env_parse to its next line: sets line (without
# a CRLF's CR) and lineno, advances i (its locals, by dynamic scoping). Fails,
# with the error printed, on a CR that does not end the line.
dg__env_next_line() {
  lineno=$(( i + 1 ))
  line=${dg__lines[i]}
  line=${line%$'\r'}
  i=$(( i + 1 ))
  if [[ $line == *$'\r'* ]]; then
    dg__env_err "$file" "$lineno" 'carriage return (\r) not followed by a newline; dotenv reads it as a line break, Node'"'"'s util.parseEnv deletes it' \
      'use LF or CRLF line endings only (for example: dos2unix FILE)'
    return 1
  fi
}

# dg__env_parse FILE: the parser proper. Fills dg__parsed (an associative
# array local to dg_env_load, visible here by dynamic scoping).
dg__env_parse() {
  local file=$1
  local dg__content='' dg__shown=''
  local -a dg__lines=()
  local n i lineno line kp key rest q body value after start_no tmp closed

  if [[ -d $file || ! -r $file ]]; then
    printf '%s: cannot read the env file; create it (for example from its .example file) and make it readable by the deploy user\n' "$file" >&2
    return 1
  fi
  # read -d '' stops at the first NUL byte: success means there is one.
  if IFS= read -r -d '' dg__content < "$file"; then
    tmp=${dg__content//[!$'\n']/}
    dg__env_err "$file" "$(( ${#tmp} + 1 ))" 'contains a NUL byte (binary data)' \
      'an env file is text: remove the NUL byte or re-save the file as UTF-8 text'
    return 1
  fi
  if [[ $dg__content == $'\xef\xbb\xbf'* ]]; then
    dg__env_err "$file" 1 'starts with a UTF-8 byte order mark, which Node'"'"'s util.parseEnv makes part of the first key' \
      'save the file as UTF-8 without BOM'
    return 1
  fi
  mapfile -t dg__lines < "$file" || {
    printf '%s: cannot read the env file; check that it is readable by the deploy user\n' "$file" >&2
    return 1
  }

  n=${#dg__lines[@]}
  i=0
  while (( i < n )); do
    dg__env_next_line || return 1
    # Empty line.
    [[ -z $line ]] && continue
    # Line of whitespace only.
    if [[ -z ${line//[ $'\t\v\f']/} ]]; then
      dg__env_err "$file" "$lineno" 'line contains only spaces or tabs, which Node'"'"'s util.parseEnv reads as part of the next key' \
        'delete the whitespace so that the line is empty'
      return 1
    fi
    # Comment.
    if [[ $line == '#'* ]]; then
      if dg__env_has_js_eol "$line"; then
        dg__env_err_js_eol "$file" "$lineno" 'comment'
        return 1
      fi
      continue
    fi
    tmp=${line#"${line%%[! $'\t']*}"}
    if [[ $tmp == '#'* ]]; then
      dg__env_err "$file" "$lineno" 'indented comment, which Node'"'"'s util.parseEnv reads as part of the next key' \
        "remove the spaces or tabs before '#'"
      return 1
    fi
    if [[ $line != *=* ]]; then
      if [[ $tmp =~ ^(export[[:space:]]+)?[A-Za-z0-9_.-]+:[[:space:]] ]]; then
        dg__env_err "$file" "$lineno" "'KEY: value' is not understood by Node's util.parseEnv" \
          'write KEY=value'
      else
        dg__env_err "$file" "$lineno" "expected KEY=value but the line has no '='" \
          "write KEY=value (KEY= for an empty value) or turn the line into a comment with '#' at its start"
      fi
      return 1
    fi

    # Key.
    kp=${line%%=*}
    rest=${line#*=}
    kp=${kp#"${kp%%[! ]*}"}
    kp=${kp%"${kp##*[! ]}"}
    key=$kp
    if [[ $key == 'export '* ]]; then
      key=${key#export }
    fi
    if [[ -z $key ]]; then
      dg__env_err "$file" "$lineno" "no key before '='" 'write KEY=value'
      return 1
    fi
    if [[ ! $key =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
      dg__env_show "$kp"
      if [[ $kp == [[:space:]]* ]]; then
        dg__env_err "$file" "$lineno" "tab or other non-space whitespace before the key, which Node's util.parseEnv keeps in the key" \
          'indent with spaces or not at all'
      elif [[ $kp =~ ^export[[:space:]] ]]; then
        dg__env_err "$file" "$lineno" "whitespace other than one space after 'export' ($dg__shown), which dotenv and Node's util.parseEnv read differently" \
          'write exactly one space: export KEY=value'
      elif [[ $kp == *[[:space:]] ]]; then
        dg__env_err "$file" "$lineno" "tab or other non-space whitespace between the key and '=', which Node's util.parseEnv keeps in the key" \
          'remove it (spaces are fine)'
      else
        dg__env_err "$file" "$lineno" "invalid key $dg__shown" \
          'a key must match ^[A-Za-z_][A-Za-z0-9_]*$ (ASCII letters, digits and _, not starting with a digit): rename it, for example with _ instead of . or -'
      fi
      return 1
    fi
    if [[ $key == __proto__ ]]; then
      dg__env_err "$file" "$lineno" 'the key __proto__ is silently dropped by dotenv and Node'"'"'s util.parseEnv' \
        'rename it'
      return 1
    fi

    # Value.
    rest=${rest#"${rest%%[! ]*}"}
    q=${rest:0:1}
    if [[ $q == [\'\"\`] ]]; then
      start_no=$lineno
      body=${rest:1}
      closed=0
      if [[ $body == *"$q"* ]]; then
        value=${body%%"$q"*}
        after=${body#*"$q"}
        closed=1
      else
        value=$body
        while (( i < n )); do
          dg__env_next_line || return 1
          if [[ $line == *"$q"* ]]; then
            value+=$'\n'${line%%"$q"*}
            after=${line#*"$q"}
            closed=1
            break
          fi
          value+=$'\n'$line
        done
      fi
      if (( ! closed )); then
        dg__env_err "$file" "$start_no" "the value of $key opens with $q but it is never closed" \
          "add the closing $q (a multi-line value ends with the same quote it starts with)"
        return 1
      fi
      if [[ $value == *\\ ]]; then
        dg__env_err "$file" "$lineno" "backslash right before the closing $q, which dotenv may read as an escaped quote" \
          'write the value without quotes, or do not end it with a backslash'
        return 1
      fi
      if dg__env_has_js_eol "$after"; then
        dg__env_err_js_eol "$file" "$lineno" 'comment'
        return 1
      fi
      tmp=${after#"${after%%[! $'\t']*}"}
      if [[ -n $tmp && $tmp != '#'* ]]; then
        if (( lineno != start_no )); then
          tmp=" (the value of $key opened with $q on line $start_no: is its closing quote missing?)"
        else
          tmp=''
        fi
        dg__env_err "$file" "$lineno" "text after the closing $q$tmp; dotenv and Node's util.parseEnv read this differently" \
          "remove the text, or start it with '#' to make it a comment"
        return 1
      fi
      if [[ $q == '"' ]]; then
        if [[ $value == *'\r'* ]]; then
          dg__env_err "$file" "$lineno" "\\r in a double-quoted value: dotenv turns it into a carriage return, Node's util.parseEnv keeps it" \
            'use single quotes to keep the backslash literally'
          return 1
        fi
        value=${value//\\n/$'\n'}
      fi
    else
      if dg__env_has_js_eol "$rest"; then
        dg__env_err_js_eol "$file" "$lineno" 'value or comment'
        return 1
      fi
      value=${rest%%#*}
      value=${value#"${value%%[! ]*}"}
      value=${value%"${value##*[! ]}"}
      if dg__env_has_js_space_edge "$value"; then
        dg__env_err "$file" "$lineno" "the value of $key starts or ends with a tab or other non-space whitespace, which dotenv strips and Node's util.parseEnv keeps" \
          'remove it, or put the value in single quotes to keep it'
        return 1
      fi
    fi
    dg__parsed[$key]=$value
  done
  return 0
}

dg_env_load() {
  if (( $# != 2 )); then
    printf 'dg_env_load: usage: dg_env_load FILE ARRAY_NAME\n' >&2
    return 2
  fi
  if [[ ! $2 =~ ^[A-Za-z_][A-Za-z0-9_]*$ || $2 == dg__* ]]; then
    printf 'dg_env_load: %s is not a usable array name\n' "$2" >&2
    return 2
  fi
  local dg__attrs=''
  if (( BASH_VERSINFO[0] > 4 || (BASH_VERSINFO[0] == 4 && BASH_VERSINFO[1] >= 4) )); then
    local -n dg__probe=$2
    local dg__had_u=0
    if [[ $- == *u* ]]; then dg__had_u=1; fi
    set +u
    dg__attrs=${dg__probe@a}
    if (( dg__had_u )); then set -u; fi
  else
    dg__attrs=$(declare -p "$2" 2>/dev/null) || dg__attrs=''
    dg__attrs=${dg__attrs#declare -}
    dg__attrs=${dg__attrs%% *}
  fi
  if [[ $dg__attrs != *A* ]]; then
    printf 'dg_env_load: %s must be declared with declare -A first\n' "$2" >&2
    return 2
  fi

  local -n dg__out=$2
  local LC_ALL=C
  local dg__ncm=0 dg__rc=0 dg__k
  local -A dg__parsed=()
  if shopt -q nocasematch; then
    dg__ncm=1
    shopt -u nocasematch
  fi
  dg__env_parse "$1" || dg__rc=$?
  if (( dg__ncm )); then shopt -s nocasematch; fi
  if (( dg__rc != 0 )); then
    return 1
  fi
  if (( ${#dg__parsed[@]} > 0 )); then
    for dg__k in "${!dg__parsed[@]}"; do
      # shellcheck disable=SC2034 # dg__out is a nameref to the caller's array
      dg__out["$dg__k"]=${dg__parsed["$dg__k"]}
    done
  fi
  return 0
}

dg_env_file_mode_warning() {
  local file=$1 mode shown
  mode=$(stat -c %a -- "$file" 2>/dev/null) || return 0
  [[ $mode =~ ^[0-7]+$ ]] || return 0
  if (( (8#$mode & 8#044) != 0 )); then
    printf -v shown '%q' "$file"
    printf '%s is readable by group or others (mode %s); restrict it with: chmod 600 %s\n' \
      "$file" "$mode" "$shown"
  fi
  return 0
}
