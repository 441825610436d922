import { base64Payloads, type Decoding } from './normalize.js';
import { SQL_ATTACK_FUNCTIONS, sqlInjection } from './sql-injection.js';

/** Anomaly scores as the OWASP Core Rule Set counts them. */
export const SEVERITY = { critical: 5, error: 4, warning: 3, notice: 2 } as const;
export type Severity = keyof typeof SEVERITY;

export type Family =
  | 'protocol'
  | 'scanner'
  | 'sqli'
  | 'xss'
  | 'lfi'
  | 'rfi'
  | 'rce'
  | 'php'
  | 'java'
  | 'injection'
  | 'session-fixation'
  | 'positive-model';

/**
 * Where a value sits decides how hard it is read:
 * - `prose`: clinical free text (FHIR narrative, notes, comments) — only signals prose never has.
 * - `pl`: paranoia level, as CRS names it. Parameters of a real route are read at 2; everything a
 *   request to no route carries at 4 (nothing legitimate goes there, so reading it hard costs no
 *   clinical work); names (parameter names, JSON keys, file names) one level up.
 */
export interface ValueContext {
  kind: 'path' | 'name' | 'value' | 'header' | 'cookie' | 'filename' | 'ws';
  prose: boolean;
  pl: 1 | 2 | 3 | 4;
  /** Lower-case header name, for header values. */
  header?: string;
}

export interface Hit {
  rule: string;
  family: Family;
  severity: Severity;
}

interface Rule {
  id: string;
  family: Family;
  severity: Severity;
  /** Lowest paranoia level it runs at. */
  pl: 1 | 2 | 3 | 4;
  /** Runs on clinical free text too (signals prose never has). */
  prose?: boolean;
  kinds?: ValueContext['kind'][];
  test(d: Decoding, ctx: ValueContext): boolean;
}

const re = (pattern: RegExp, on: 'text' | 'compact' | 'both' = 'both') => (d: Decoding) =>
  on === 'text' ? pattern.test(d.text) : on === 'compact' ? pattern.test(d.compact) : pattern.test(d.text) || (d.compact !== d.text && pattern.test(d.compact));

// --- command injection ---------------------------------------------------------------------
const UNIX_COMMANDS =
  'cat|tac|nl|ls|dir|id|whoami|uname|wget|curl|fetch|nc|ncat|netcat|socat|telnet|ssh|scp|sftp|ftp|tftp|bash|sh|zsh|ksh|csh|tcsh|dash|ash|busybox|python[23]?|perl|ruby|php|node|lua|java|nmap|ping|ifconfig|ipconfig|netstat|ss|route|arp|echo|printf|printenv|env|export|chmod|chown|chgrp|rm|rmdir|mv|cp|touch|mkdir|mkfifo|mknod|ln|nohup|time|timeout|strace|ltrace|gdb|sudo|su|doas|crontab|ps|pkill|kill|killall|find|locate|grep|egrep|fgrep|awk|gawk|sed|head|tail|more|less|base64|base32|xxd|od|hexdump|dd|tar|zip|unzip|gzip|gunzip|bzip2|xz|unxz|7z|openssl|gpg|useradd|usermod|passwd|chpasswd|shutdown|reboot|halt|poweroff|systemctl|service|mount|umount|fdisk|sysctl|iptables|tcpdump|history|xargs|tee|eval|exec|source|alias|unset|set|declare|sleep|whoami|hostname|last|lastlog|w|who|uptime|df|du|free|top|lsof|pwd|cd|exit|expr|seq|yes|watch|at|batch|ansible[a-z-]*|chef[a-z-]*|puppet|salt|docker|kubectl|perf|git|svn|apt|apt-get|yum|dnf|rpm|dpkg|pip|npm|gcc|cc|make|vi|vim|nano|emacs|rev|sort|uniq|cut|tr|wc|file|strings|script|screen|tmux|runuser|setsid|bc|dc|jq|getent|groups|finger|mail|sendmail|lynx|links|w3m|aria2c|rsync|visudo|sudoedit|pkexec|journalctl|dmesg|lsmod|modprobe|insmod|rmmod|nft|ufw|firewall-cmd|cscli|apk|zypper|pacman|systemd-run|chattr|lsattr|setfacl|getfacl|nsenter|unshare|chroot|capsh|setcap|getcap|lsblk|blkid|mkfs|losetup|dpkg-query|pip3|cargo|php-cgi|xterm|ksh93|mksh|rbash|pdksh|zsh5|nslookup|dig|host|whois|traceroute|tracepath|systeminfo|tasklist|taskkill|net|netsh|reg|wmic|certutil|bitsadmin|powershell|pwsh|cmd|cscript|wscript|mshta|rundll32|regsvr32|schtasks|sc|icacls|cacls|attrib|type|del|copy|move|start|call|iwr|iex|irm|invoke-webrequest|invoke-expression|invoke-restmethod|start-process|new-object|get-content|set-content|get-childitem|downloadstring|downloadfile';
const COMMAND_AFTER_META = new RegExp(`(?:[;|&\`\\n\\r]|\\$\\(|\\|\\||&&|<\\(|>\\(|\\{)\\s*(?:[\\w./-]*/)?(?:${UNIX_COMMANDS})(?:\\.exe)?(?=$|[\\s;|&<>\`'")(\\\\,{}]|\\$)`);
const COMMAND_AT_START = new RegExp(`^\\s*(?:[\\w./-]*/)?(?:${UNIX_COMMANDS})(?:\\.exe)?(?:\\s+[-/.\\w~'"$]|\\s*[;|&<>\`(]|$)`);
const SHELL_PATHS = /(?:^|[\s;|&'"`(=<>])(?:s?bin|usr\/s?bin)\/[a-z]|(?:^|[\s;|&'"`(=<>])\/(?:bin|sbin|usr\/bin|usr\/sbin|usr\/local\/bin|dev\/(?:tcp|udp|null|shm)|tmp|var\/tmp|proc\/self)\/|\/bin\/[a-z]/;
const SHELL_EXPANSION = /\$\([^)]*\)|\$\{[a-z_][a-z0-9_]*(?:[:#%][^}]*)?\}|`[^`]*`|\$\(\(|<<<|\$[a-z_]{3,}\b|\{[\w\/.-]*,[^}]*\}|\(\s*\)\s*\{/;
const SHELL_GLOB_PATH = /\/[a-z?*\[\]]*[?*\[][a-z?*\[\]]*\/[a-z?*\[\]\/]*|\/\?{2,}/;
const FORK_BOMB = /(?:^|[^\w])(?:\w{1,32}|:)\s*\(\s*\)\s*\{[^}]*\|[^}]*&[^}]*\}/;
const WINDOWS_CMD = /(?:^|[\s&|;])(?:if\s+(?:not\s+)?\S+\s*==\s*\S+|for\s+\/[flrd]\b|for\s+%%?\w|if\s+(?:not\s+)?(?:exist|defined|errorlevel|\/i)\b|if\s+%|if\s+"?%|if\s+\(|if\s+not\s+\(|%(?:comspec|systemroot|windir|temp|path|userprofile|programfiles|appdata|errorlevel)%|cmd(?:\.exe)?\s+\/[ck]|\bdo\s+@?echo\b|\bdo\s+(?:cmd|call|copy|del|set)\b|\bequ\b|\bgeq\b|\bleq\b|\bneq\b)/;
const POWERSHELL = /(?:invoke-(?:webrequest|expression|restmethod|command|item|wmimethod)|\biex\s*\(|new-object\s+(?:system\.)?net\.webclient|downloadstring|start-process|-encodedcommand|-enc\s+[a-z0-9+/=]{8}|\biwr\s+[a-z]|\birm\s+[a-z]|\[system\.|frombase64string)/;

// SMTP, IMAP and POP3 commands smuggled after a line break (into a mail backend).
const MAIL_COMMAND = /[\r\n]\s*(?:[a-z]?\d{0,6}\s+)?(?:data|quit|help|rset|noop|vrfy|expn|helo|ehlo|mail\s+from|rcpt\s+to|auth(?:enticate)?|starttls|login|logout|select|examine|create|delete|rename|subscribe|unsubscribe|list|lsub|status|append|check|close|expunge|search|fetch|store|copy|uid|capability|retr|dele|top|uidl|user|pass|apop|stat|idle|noop)\b/;

// --- PHP -------------------------------------------------------------------------------------
const PHP_FUNCTIONS =
  'system|exec|shell_exec|passthru|popen|proc_open|pcntl_exec|eval|assert|assert_options|create_function|call_user_func(?:_array)?|preg_replace|base64_decode|base64_encode|gzinflate|gzuncompress|gzdecode|gzdeflate|str_rot13|convert_uudecode|file_get_contents|file_put_contents|fopen|fwrite|fputs|readfile|file|unlink|include|include_once|require|require_once|phpinfo|posix_\\w+|pcntl_\\w+|proc_\\w+|ini_set|ini_get|ini_restore|set_include_path|dl|mail|putenv|getenv|highlight_file|show_source|php_uname|phpversion|get_cfg_var|get_current_user|getmypid|getmyuid|array_map|array_filter|array_walk|usort|uasort|uksort|register_shutdown_function|register_tick_function|ob_start|extract|parse_str|unserialize|serialize|var_dump|print_r|var_export|move_uploaded_file|stream_get_contents|stream_socket_client|fsockopen|pfsockopen|curl_exec|curl_init|simplexml_load_string|mb_ereg_replace|mb_eregi_replace|chr|ord|hex2bin|bin2hex|strrev|substr|str_replace|implode|explode|glob|scandir|opendir|readdir|is_dir|is_file|file_exists|touch|chmod|chown|copy|rename|mkdir|rmdir|symlink|link|tempnam|tmpfile|sleep|usleep|exit|die|md5|sha1|crc32|uniqid|rand|mt_rand|strlen|strtolower|strtoupper|trim|ucfirst|sprintf|printf|vsprintf|gettype|settype|is_callable|function_exists|class_exists|method_exists|get_defined_vars|get_defined_functions|debug_backtrace|error_reporting|set_error_handler|header|setcookie|session_start|ftp_connect|ldap_connect|dns_get_record|gethostbyname|escapeshellcmd|escapeshellarg|apache_\\w+|fgets|fread|fgetc|fgetss|fscanf|ftruncate|flock|disk_\\w+';
const PHP_CALL = new RegExp(`(?:^|[^a-z0-9_$>.])(?:${PHP_FUNCTIONS})\\s*(?:\\(|\\/\\*|#|\\s*["'])`);
const PHP_CALL_NAME = new RegExp(`(?:^|[^a-z0-9_$>])(?:zlib_(?:de|en)code|posix_\\w+|pcntl_\\w+|proc_\\w+|shell_exec|passthru|phpinfo|base64_decode|gzinflate|gzuncompress|str_rot13|create_function|call_user_func|file_get_contents|file_put_contents|php_uname|get_cfg_var|getmypid|highlight_file|show_source|move_uploaded_file|assert_options|ini_set|hex2bin|unserialize|stream_socket_client|fsockopen)\\b`);
const PHP_OPEN_TAG = /<\?(?:php\b|=|\s)|<\?$|\[\s*php\s*\]|\{php\}|<script\s+language\s*=\s*["']?php/;
const PHP_WRAPPER = /\b(?:php|phar|zlib|glob|expect|data|ogg|rar|zip|compress\.zlib|compress\.bzip2|ssh2\.(?:shell|exec|tunnel|sftp|scp))\s*:\/\//;
const PHP_VARIABLE_CALL = /\$[a-z_\x7f-\xff][\w\x7f-\xff]*\s*(?:\[[^\]]*\]\s*)*\(|\$\{[^}]*\}\s*\(|\$_+\s*\[|\$(?:_get|_post|_request|_cookie|_server|_files|_env|_session|globals|http_raw_post_data)\b|@\$_+|\$_{2,}/;
const PHP_SERIALIZED = /(?:^|[;{"'=\s])(?:[oc]:\d+:"[^"]+":\d+:\{|a:\d+:\{[sibdnoa]:|s:\d+:"[^"]*";)/;
const PHP_INI = /\b(?:allow_url_(?:include|fopen)|auto_(?:prepend|append)_file|disable_functions|open_basedir|safe_mode|register_globals|magic_quotes_gpc|session\.(?:auto_start|save_path|save_handler|use_trans_sid)|mbstring\.[a-z_]+|pcre\.(?:backtrack|recursion)_limit|error_log|include_path|memory_limit|max_execution_time|display_errors|file_uploads|upload_tmp_dir|extension_dir|sendmail_path|user_ini\.filename|zend\.[a-z_]+|opcache\.[a-z_]+|xdebug\.[a-z_]+|php_value|php_admin_value|php_flag)\b\s*(?:=|$)|\b(?:zend_)?extension\s*=\s*\S/;
const PHP_STRING_CALL = /\[\s*['"]?(?:system|exec|passthru|shell_exec|assert|eval|popen|proc_open)['"]?\s*\]|["']\s*\.\s*["']|\(\s*(?:string|array|object)\s*\)\s*["'\w]|\\x[0-9a-f]{2}[a-z]|\([a-z.]+\.\([a-z]+\)\.[a-z]+\)\s*\(|\)\s*\(\s*["'][a-z]{2,}["']\s*\)\s*;/;
const PHP_FILE_EXT = /\.(?:php\d*s?|phtml|pht|phar|phps|pgif|shtml|htaccess|inc|cgi|asp|aspx|jsp|jspx|cfm|pl|py|rb|sh|exe|bat|cmd|com|dll|vbs|ps1|war|jar)(?:[.\s~]|%00|\0|$)/;
const PHP_SESSION_FILE = /(?:^|[\\/])sess_[a-z0-9-]{12,}/;

// --- Java and expression languages -------------------------------------------------------------
const JAVA_CLASS = /\b(?:java|javax|jdk|sun|com\.sun|org\.apache|org\.springframework|org\.omg|org\.codehaus|org\.mozilla|bsh|groovy|ognl|com\.opensymphony|org\.hibernate|com\.mchange|net\.sf|org\.python|clojure)\.[a-z_$][\w$]*(?:\.[\w$]+)*/;
const JAVA_GADGETS =
  /(?:runtime|processbuilder|processimpl|unixprocess|invokertransformer|instantiatetransformer|instantiatefactory|clonetransformer|chainedtransformer|constanttransformer|prototypeclonefactory|prototypeserializationfactory|forclosure|whileclosure|templatesimpl|getruntime|classloader|urlclassloader|scriptenginemanager|jdbcrowsetimpl|methodinvoker|beanfactory|xstream|xmldecoder|objectinputstream|objectoutputstream|serializationutils|commons-collections|lazymap|badattributevalueexpexception|annotationinvocationhandler|transformedmap|defineclass|newinstance|getmethod|getdeclaredmethod|forname)/;
const JAVA_GADGET_DOTTED = new RegExp(`(?:^|[^a-z])(?:${JAVA_GADGETS.source})\\.[a-z]|[a-z]\\.(?:${JAVA_GADGETS.source})(?:$|[^a-z])|(?:^|[^a-z])(?:invokertransformer|instantiatetransformer|chainedtransformer|constanttransformer|prototypeclonefactory|prototypeserializationfactory|instantiatefactory|templatesimpl|jdbcrowsetimpl|getruntime|scriptenginemanager|processbuilder|forclosure|clonetransformer|whileclosure)(?:$|[^a-z])`);
const JAVA_SERIALIZED = /rO0AB|KztAAU|Cs7QAF|aced0005|ACED0005|\xac\xed\x00\x05|H4sIAAAAAAAA/;
const JNDI = /\$\{(?:[^}]*?:)?j[^a-z]*n[^a-z]*d[^a-z]*i[^a-z]*:|\$\{(?:jndi|ctx|env|sys|java|lower|upper|date|main|marker|bundle|docker|k8s|log4j|spring|sd|web|base64|event|map|::-)[:}]|\b(?:ldaps?|rmi|iiop|corba|nds|nis|dns|http)s?:\/\/[^\s]*\/[a-z]*(?:exploit|obj|evil|payload|a)\b/;
const EXPRESSION_LANGUAGE =
  /(?:#_memberaccess|#context\[|#request\b|#session\b|#application\b|#attr\b|@ognl|ognlcontext|%\{\s*[#(@]|\$\{\s*[#@(]|\bt\s*\(\s*java\.|\.getclass\s*\(|\.class\.(?:classloader|forname|module)|class\.module\.classloader|\.getruntime\s*\(|\.exec\s*\(|new\s+java\.|@java\.|\brequest\.getparameter|facescontext|\bspring\.|\$\{[^}]*(?:\.invoke|\.exec|\.getclass|\.forname|runtime|processbuilder)[^}]*\}|#\{[^}]*[.(][^}]*\}|\$\{\s*\d+\s*[*+/-]\s*\d+\s*\})/;

// --- template / generic code injection ------------------------------------------------------------
const TEMPLATE = /\{\{.*?\}\}|\{%.*?%\}|\$\{[^}]+\}|#\{[^}]+\}|\*\{[^}]+\}|@\{[^}]+\}|<%[=@!#]?.*?%>|\{\$[^}]*\}|\[\[.*?\]\]|\{\{|\{%/s;
const NODE_INJECTION =
  /(?:\bconsole\s*(?:\.|\[)\s*['"]?(?:log|info|warn|error|debug|dir|trace)|\bprocess\s*\[|\brequire\s*[\(\[]|child_process|process\s*\.\s*(?:mainmodule|binding|env|exit|kill|dlopen)|\bconstructor\s*(?:\.|\[)\s*(?:constructor|prototype)|\bconstructor\s*\(|__proto__|\bprototype\s*(?:\.|\[)|_\$\$nd_func\$\$_|\bnew\s+function\s*\(|\bfunction\s*\(\s*\)\s*\{|\bimport\s*\(|\bglobal\s*\.\s*process|\bconsole\s*\.\s*log\s*\(|\bsettimeout\s*\(|\bsetinterval\s*\(|\bmodule\s*\.\s*exports|\b(?:vm|fs)\s*\.\s*(?:runin|readfile|writefile|exec)|\beval\s*\(|\bwhile\s*\(\s*(?:true|1|!!\[\]|!\+?0|infinity|!false)\s*\)|\bfor\s*\(\s*;\s*;\s*\))/;
const PYTHON_INJECTION = /(?:__import__|__class__|__globals__|__builtins__|__subclasses__|__mro__|__bases__|__init__|__getattribute__|__reduce__|\bos\s*\.\s*(?:system|popen|exec\w*|spawn\w*)|\bsubprocess\s*\.|\bcompile\s*\(|\bexecfile\s*\(|\bpickle\s*\.|\bcodecs\s*\.\s*decode|\bimport\s+(?:os|sys|subprocess|socket|pty)\b|\bfrom\s+(?:os|subprocess)\s+import)/;
const PERL_INJECTION = /@\{\s*\[|\bcore::|\bsystem\s+['"]|\bqx\s*[{(\/]|\bopen\s*\(?\s*[a-z]+\s*,\s*['"]?[|<>]/;
const ORM_LOOKUP = /__(?:isnull|iexact|exact|icontains|contains|in|gt|gte|lt|lte|startswith|istartswith|endswith|iendswith|range|date|year|month|day|regex|iregex|search|isempty|has_key|has_keys|overlap|contained_by)\b/;

// --- cross-site scripting -------------------------------------------------------------------------
const SCRIPT_TAG = /<\s*\/?\s*script\b|<\s*script[\s>\/]/;
const EVENT_HANDLER_IN_TAG = /<[a-z!][^>]*?[\s"'\/;`]on[a-z]{3,}\s*=/;
const EVENT_HANDLER = /(?:^|[\s"'`\/;>])on[a-z]{3,}\s*=/;
const JS_URI = /(?:^|[\s"'`=(,<:])(?:j\s*a\s*v\s*a|v\s*b|l\s*i\s*v\s*e|m\s*o\s*c\s*h\s*a)\s*s\s*c\s*r\s*i\s*p\s*t\s*:|\bdata\s*:\s*(?:text\/html|[a-z]+\/[a-z.+-]*(?:script|xml|svg)|[^,]*;\s*base64)|(?:^|[\s"'`=(])data\s*:\s*,/;
const DANGEROUS_TAG = /<\s*\/?\s*(?:script|iframe|frame|frameset|object|embed|applet|meta|link|style|base|form|svg|math|img|image|video|audio|source|body|html|head|input|button|select|textarea|isindex|keygen|marquee|details|dialog|template|xss|x|xml|import|vmlframe|bgsound|layer|ilayer|blink|plaintext|xmp|listing|noscript|noembed|noframes|portal|set|animate|handler|a|div|span|p|table|td|tr|h1|b|i|u|br|hr|font|center|title|lt|textarea)\b/;
const ANY_TAG = /<\s*[a-z!\/?:%][a-z0-9:-]*[\s>\/=]|<\s*[a-z][a-z0-9]*$|<!--|-->|<!\[cdata\[|<!doctype|<!entity/;
const JS_SINKS =
  /(?:\b(?:alert|prompt|confirm|eval|settimeout|setinterval|execscript|fromcharcode|atob|btoa|unescape|escape|globaleval|write|writeln|open|fetch|import)\s*(?:\(|`)|\bdocument\s*\)?\s*(?:\.|\[)\s*['"]?(?:cookie|domain|write|location|body|forms|createelement|documentelement)|\bwindow\s*(?:\.|\[)\s*['"]?(?:location|name|open|eval)|\blocation\s*(?:\.|\[)\s*['"]?(?:href|hash|replace|assign)|\.innerhtml\b|\.outerhtml\b|\binnerhtml\s*=|\bsrcdoc\s*=|(?:self|top|parent|this|window|frames|globalthis)\s*\[\s*["'`]|\bconstructor\s*\(|!!\[\]|\[\]\[|\+!\+?\[\]|\(\[\]\+\[\]\)|\bstring\s*\.\s*fromcharcode|\bexpression\s*\(|\burl\s*\(\s*['"]?\s*(?:javascript|vbscript|data):|-moz-binding|behavior\s*:|@import\b|\bxlink:href\b|\bformaction\s*=|\bstyle\s*=\s*['"]?[^'"]*(?:expression|javascript|url\s*\()|\bhttp-equiv\b|\bsrc\s*=\s*['"]?[^'"\s>]+\.(?:js|swf)\b|\bhref\s*=\s*['"]?[^'"\s>]+\.(?:js|swf)\b)/;

// --- path traversal and file access ------------------------------------------------------------
const TRAVERSAL = /(?:^|[\\/=:'"\s;,|])\.{2,}[\\/;]|[\\/]\.{2,}(?:[\\/;]|$)|\.{2,}[\\/](?=\.{2}|[a-z])|\.\.\\|\.\.%|^\.\.$/;
const TRAVERSAL_PROSE = /(?:^|[\\/])\.\.[\\/].*\.\.[\\/]|(?:^|\s)\.\.\/(?:\.\.\/)+|\.\.\/(?:etc|proc|windows|boot|var|usr|root|home)\b/;
const OS_FILES =
  /(?:\/etc\/(?:passwd|shadow|group|gshadow|hosts|issue|motd|sudoers|crontab|fstab|mtab|resolv\.conf|hostname|network|profile|bashrc|environment|apache2?|httpd|nginx|mysql|php|ssh|ssl|security|master\.passwd|pwd\.db|spwd\.db|os-release|lsb-release|machine-id|letsencrypt|init\.d|rc\.d|cron\.|exports|inittab|ld\.so|sysconfig|default|x11|redhat-release|debian_version)|\/proc\/(?:self|\d+|version|cpuinfo|meminfo|mounts|net|sched_debug|partitions|cmdline|environ|kcore)|\/sys\/(?:class|kernel|devices|block|bus|firmware|fs|module|power)|\/var\/(?:log|mail|spool|www|lib\/mysql|run\/secrets|db)|\/root\/|\/home\/[^/]+\/\.|\/usr\/local\/(?:etc|apache)|\/dev\/(?:tcp|udp|shm|mem|kmem|zero|random)|(?:^|[\\/])(?:boot|win|system)\.ini\b|\\windows\\|\/windows\/|c:\\|c:\/|\\winnt\\|\\system32\\|\/system32\/|\\inetpub\\|\/inetpub\/|\bweb\.config\b|\bwp-config\.php\b|\bconfig\.php\b|\.ssh\/|\bid_(?:rsa|dsa|ecdsa|ed25519)\b|\bauthorized_keys\b|\bknown_hosts\b|\.aws\/|\.docker\/|\.kube\/|\.gnupg\/|\.bash_history\b|\.zsh_history\b|\.mysql_history\b|\.psql_history\b|\.netrc\b|\.pgpass\b|\.git-credentials\b|\.npmrc\b|\.pypirc\b|\bprivkey\.pem\b|\bcredentials\.json\b|\bsecrets?\.(?:json|ya?ml|env)\b)/;
const RESTRICTED_FILE = /(?:^|[\\/])\.(?:env|git|svn|hg|bzr|cvs|ssh|aws|htaccess|htpasswd|htdigest|ds_store|bash_history|bashrc|profile|npmrc|dockerenv|docker|kube|vscode|idea|config|cache|local|terraform|vagrant|well-known-not)(?:[\\/.]|$)|(?:^|[\\/])(?:\.?env(?:\.[a-z]+)?|web\.config|wp-config\.php|composer\.(?:json|lock)|package(?:-lock)?\.json|yarn\.lock|docker-compose\.ya?ml|dockerfile|makefile|gemfile|\.gitignore|phpinfo\.php|server-status|server-info|elmah\.axd|trace\.axd|crossdomain\.xml)$|(?:^|\/)(?:@(?:fs|id|vite)\/|__vite|node_modules\/|webpack-dev-server|__webpack_hmr)/;
const BACKUP_EXTENSION = /\.(?:bak|backup|old|orig|save|sav|swp|swo|tmp|temp|dist|copy|sql|sqlite3?|db|mdb|rdb|dump|dmp|pem|key|p12|pfx|crt|csr|jks|keystore|kdbx|log|ini|conf|cfg|config|properties|ya?ml|toml|env|lock|tar|tgz|gz|zip|7z|rar|bz2|xz|war|ear|class|py[co]|inc|asa|cer|cdx|idq|htr|printer|ida|ht[rw]|mdf|ldf|frm|ibd|myd|myi|git|svn)(?:$|[~#])|~$|#$|\.(?:bak|old|orig|save|swp)[~.]?/;
const DOT_SEGMENT = /(?:^|\/)\.(?!well-known\/)[^/]+/;

// --- remote file inclusion / server-side request forgery ------------------------------------------
const RFI_SCHEMES = /(?:^|[\s"'`=(,;|<>])(?:file|ftps?|tftp|gopher|dict|ldaps?|jar|netdoc|sftp|ssh2|smb|nfs|expect|phar|zip|rar|ogg|glob|data|url:file|url:http|acap|imap|pop3|smtp|telnet|rtsp|mms|svn|git|jdbc|mailto|news|nntp|wais|prospero|rmi|iiop|corba|nis|dns|rtmp)s?:(?:\/\/|\/|[a-z0-9])|\burl\s*:\s*[a-z]+:/;
const URL_TRAILING_QUESTION = /\b(?:https?|ftps?|file)(?::\/\/[^?\s]*)?\?+$/;
// A host written in octal, hex or as one number only counts where a host is: after the slashes or a userinfo's @
// (else a FHIR date search such as ge2026-11-24T21:05:00Z reads as scheme "ge2026-11-24t21:" and host "05").
const URL_WITH_IP = /\b[a-z][a-z0-9+.-]*:\/{0,2}(?:[^\s@\/]*@)?(?:\[[0-9a-f:.%a-z]+\]|\d{1,5}(?:\.\d{1,5}){1,3}(?::\d+)?(?:[/?#]|$)|(?<=[/@])(?:0x[0-9a-f]+|0[0-7]+|\d{8,})(?:[:/]|$)|[0-9a-f]*:[0-9a-f:]+::?[0-9a-f:]*|localhost\d*|[^\s/]*\.(?:localhost|internal|local)\b|metadata\.google\.internal|169\.254\.|0\.0\.0\.0)/;
const URL_OFFSITE = /\b(?:https?|ftp):\/\/[^\s/?#]+/;
const URL_DECIMAL_HOST = /\bhttps?:\/*\d{6,}|\bhttps?:\/*0x[0-9a-f]{6,}/;
const LOCALHOST_URL = /(?:^|[=\s"'])(?:https?:\/\/)?(?:localhost[\w.-]*|ipv6-localhost|ip6-localhost|[\w.-]*\.(?:docker\.internal|cluster\.local|svc|internal|localdomain)|127\.\d+\.\d+\.\d+|0\.0\.0\.0|\[?::1\]?|0x7f[0-9a-f]*|2130706433)(?:[:/]|$)/;

// --- protocol attacks carried in values ---------------------------------------------------------
const CRLF_HEADER = /[\r\n]+\s*(?:[a-z-]+\s*:|http\/\d)|[\r\n]+\s*(?:content-(?:length|type)|set-cookie|location|refresh|remote-addr|x-[a-z-]+|transfer-encoding)\b/;
const HTTP_REQUEST_IN_VALUE = /\b(?:get|post|put|delete|head|options|trace|connect|patch|propfind)\s+(?:https?:\/\/|\/)[^\s]*\s+http\/\d/;
const META_REFRESH = /<\s*meta[^>]*http-equiv|content\s*=\s*["']?\d+\s*;\s*url\s*=/;
const LDAP_INJECTION = /\)\s*!\s*\(|\)\s*\(\s*[|&!]|\)\s*\(\s*[a-z0-9_-]+\s*[~<>]?=|\(\s*[|&!]\s*\(|\*\s*\)\s*\(|^\*\)|\)\s*\(\s*[|&!]?\s*$|\)\s*[|&]\s*\(|\)\s*\(\s*(?:\||&|!)?\s*[a-z]+\s*[~<>]?=\s*\*|\)\s*\(\s*[|&]?\s*$|\)\s*\(\s+[&|]\s*$/;
const METHOD_OVERRIDE_NAME = /^(?:_method|x-http-method(?:-override)?|x-method-override|_httpmethod|method)$/;

// --- session fixation --------------------------------------------------------------------------
const SESSION_ID_NAMES = /(?:^|[^a-z])(?:jsessionid|phpsessid|phpsession|aspsessionid|asp\.net_sessionid|sessionid|session_id|sessid|sid|_session|session|sess|cfid|cftoken|cfsid|jwsession|sails\.sid|koa[.:]sess|connect\.sid|_flask_session|play_session|rack\.session|ci_session|cakephp|laravel_session|zend_session_id|weblogicsession|meteor_login_token|next-auth\.session-token|_rails_session|express:sess|symfony|pyramid_session|beaker\.session\.id|auth_token|remember_token)(?:$|[^a-z])/;
const SET_COOKIE_IN_VALUE = /\.cookie\s*[;=\].]|\bdocument\.cookie\b|\bset-cookie\b|;\s*(?:expires|domain|path|max-age)\s*=|\.cookie\s*;?\s*expires\s*=|<meta[^>]*set-cookie/;

/** SQL functions as CRS's probing rules name them; "(" may follow after a little noise. */
const SQL_PROBE_FUNCTIONS = new RegExp(`\\b(?:${['ascii', 'char', 'chr', 'concat', 'day', 'encode', 'decode', 'hex', 'length', 'len', 'lower', 'upper', 'md5', 'sha1', 'sha2', 'month', 'year', 'quarter', 'week', 'hour', 'minute', 'now', 'password', 'substr', 'substring', 'mid', 'left', 'right', 'replace', 'reverse', 'round', 'floor', 'rand', 'sleep', 'benchmark', 'user', 'version', 'database', 'schema', 'count', 'sum', 'avg', 'min', 'max', 'cast', 'convert', 'coalesce', 'ifnull', 'isnull', 'nullif', 'instr', 'locate', 'position', 'trim', 'soundex', 'unhex', 'compress', 'uncompress', 'elt', 'field', 'find_in_set', 'load_file', 'exp', 'pow', 'power', 'sqrt', 'abs', 'sign', 'ord', 'bin', 'oct', 'conv', 'format', 'space', 'repeat', 'lpad', 'rpad'].join('|')})(?:[\\s=\\\\/*'"\`|&<>$?.+-]){0,4}\\(`);

export const RULES: Rule[] = [
  // SQL injection, by structure (sql-injection.ts), then by the functions and catalogues attackers probe.
  { id: 'sqli-structure', family: 'sqli', severity: 'critical', pl: 1, prose: true, test: (d, c) => sqlInjection(d.compact.length < d.text.length && !c.prose ? d.compact : d.text, !c.prose) !== undefined || (!c.prose && d.compact !== d.text && sqlInjection(d.text, true) !== undefined) },
  { id: 'sqli-functions', family: 'sqli', severity: 'critical', pl: 2, test: re(SQL_ATTACK_FUNCTIONS) },
  { id: 'sqli-catalogue', family: 'sqli', severity: 'critical', pl: 1, prose: true, test: re(/\b(?:information_schema|sysobjects|syscolumns|sys\.(?:objects|tables|columns|databases|users)|pg_(?:catalog|shadow|user|tables|class|namespace)|sqlite_(?:master|schema|temp_master)|mysql\.(?:user|db)|all_tables|user_tables|dba_users|msysobjects|master\.\.sys\w*|into\s+(?:out|dump)file|load\s+data\s+(?:local\s+)?infile|@@(?:version|datadir|hostname|basedir|servername)|waitfor\s+(?:delay|time)\s+['"]|;\s*shutdown\b|\bxp_cmdshell\b|\bsp_(?:executesql|oacreate|configure|password)\b|\butl_(?:http|inaddr|file)\b|\bdbms_(?:pipe|lock|xmlgen|java)\b|\bpg_sleep\s*\(|\bbenchmark\s*\(\s*\d|\bsleep\s*\(\s*\d+\s*\)|\bselect\b[^;]{0,100}\bfrom\s+(?:dual|information_schema|users|mysql|pg_)|\bunion\b[\s(]*(?:all\s+|distinct\s+)?[\s(]*select\b|\w*union(?:all|distinct)?select\w*from|\bdrop\s+(?:table|database|schema|user|view|procedure|function)\s+[\w`"[]+\s*(?:;|--|#|$))/) },
  { id: 'sqli-operators', family: 'sqli', severity: 'critical', pl: 3, kinds: ['value', 'name', 'header', 'cookie'], test: re(/^\s*(?:x?or|and|div|like|rlike|regexp|glob|sounds\s+like|between|having|union|select|in\s*\(|not\s+in|is\s+(?:not\s+)?null|<>|!=|>=|<=|<<|>>|<=>|\|\||&&|;)\s*$|\w\s*(?:\|\||&&)\s*[\w(]|^[\w@.-]+\s*['"`]\s*$|^\s*['"`\\]{2,}\s*$|['"]\s*\\|["']\s*:\s*\[?\s*["'\d\[]|^[\s)]*(?:x?or|and|having|union|select|insert|update|delete|where|from|limit|group\s+by|order\s+by)\b|(?:^|\s)(?:x?or|and|div)\s+(?:[\d'"(@]|true|false|not|null)|\b(?:in|like|regexp|rlike|glob)\s*[\s(]*['"(]|\bhaving\s+(?:count|sum|\d)|\bexec(?:ute)?\s*[\s(@]|\bif\s*\(|\bcase\s+when\b|\bchr\s*\(|\bdate\s*\(|\bcount\s*\(|\binsert\s*\(|@@\w+|\b(?:current_user|session_user|system_user|last_insert_id|row_count|found_rows)\b|\bsql_\w+|\b(?:limit|offset)\s+\d+\s*(?:,|offset|--|#|$)|\bset\s+@|\bselect\s+[\w*@(`'"]|\bfrom\s+[\w`"[]+\s+where\b|\bwhere\s+[\w`"[.]+\s*(?:=|<|>|like|in\b|is\b|between\b)|['"]\s*(?:x?or|and|\|\||&&|like|rlike|regexp|glob|not|in|is|between|div|sounds)\b|['"`]\s*(?:[-+*\/%=<>!^|&~]|--|#|\/\*|;)|\)\s*(?:x?or|and|--|#|;|union|like)\b|(?:--|#|\/\*)\s*$/) },
  { id: 'sqli-nosql-operator', family: 'sqli', severity: 'critical', pl: 1, kinds: ['name', 'value', 'cookie'], test: re(/\[\s*\$(?:ne|eq|gt|gte|lt|lte|in|nin|regex|where|exists|or|and|not|nor|expr|elemmatch|function|accumulator)\s*\]|^\$(?:ne|eq|gt|gte|lt|lte|in|nin|regex|where|exists|or|and|not|nor|expr|elemmatch|function|accumulator)$/, 'text') },
  { id: 'sqli-dialect-words', family: 'sqli', severity: 'critical', pl: 3, kinds: ['value', 'name', 'cookie', 'header', 'path'], test: re(/\d\.e\s*[(,]|\b0x[0-9a-f]{4,}|\b(?:tempdb|msdb|msysaccessobjects|msysqueries|msysobjects|msdasql|sqloledb|n?varchar|procedure\s+analyse|like\s+null|2147483648|4294967296|9223372036854775808|18446744073709551616)\b|::\s*(?:jsonb?|text|int\d?|bool(?:ean)?|varchar|regclass|oid|bytea)\b|['"\]]\s*(?:->>?|#>>?|@>|<@|\?\||\?&|\?|#-)\s*['"\d]|\barray\s*\[/) },
  // A SQL function name, then "(" behind noise (=, quotes, operators, a backslash): CRS's probing rules.
  { id: 'sqli-function-probe', family: 'sqli', severity: 'critical', pl: 3, kinds: ['value', 'name', 'cookie'], test: re(SQL_PROBE_FUNCTIONS, 'text') },
  // Runs of metacharacters ("....", "'||'"): CRS 942460, where nothing legitimate is sent.
  { id: 'sqli-repeated-metachars', family: 'sqli', severity: 'critical', pl: 4, kinds: ['value', 'name'], test: re(/[^\w\s]{4,}/, 'text') },
  // Many SQL metacharacters in one short value: CRS's character anomaly count, only where no route is.
  { id: 'sqli-char-anomaly', family: 'sqli', severity: 'critical', pl: 4, kinds: ['value', 'name', 'cookie'], test: (d) => !/^[\w-]+={0,2}$/.test(d.text) && (d.text.match(/[~!@#$%^&*()\-+={}\[\]|:;"'`<>]/g)?.length ?? 0) >= 6 },
  // Cross-site scripting.
  { id: 'xss-script-tag', family: 'xss', severity: 'critical', pl: 1, prose: true, test: re(SCRIPT_TAG, 'text') },
  { id: 'xss-event-handler', family: 'xss', severity: 'critical', pl: 1, prose: true, test: (d, c) => (c.prose ? EVENT_HANDLER_IN_TAG.test(d.text) : EVENT_HANDLER.test(d.text) || EVENT_HANDLER_IN_TAG.test(d.text)) },
  { id: 'xss-javascript-uri', family: 'xss', severity: 'critical', pl: 1, prose: true, test: re(JS_URI, 'text') },
  { id: 'xss-dangerous-tag', family: 'xss', severity: 'critical', pl: 1, prose: true, test: (d, c) => (c.prose ? /<\s*\/?\s*(?:script|iframe|frame|object|embed|applet|meta|link|style|base|form|svg|math|isindex|xss|vmlframe|bgsound|import|portal)\b/.test(d.text) : DANGEROUS_TAG.test(d.text)) },
  { id: 'xss-js-sinks', family: 'xss', severity: 'critical', pl: 1, prose: true, test: (d, c) => (c.prose ? /\bdocument\s*\.\s*cookie\b|\.innerhtml\s*=|\bstring\.fromcharcode\s*\(|\beval\s*\(\s*['"`a-z]|\balert\s*\(\s*(?:\d|document|window|['"`])/.test(d.text) : JS_SINKS.test(d.text) || JS_SINKS.test(d.compact)) },
  { id: 'xss-any-tag', family: 'xss', severity: 'critical', pl: 2, kinds: ['value', 'name', 'header', 'cookie', 'path', 'filename', 'ws'], test: re(ANY_TAG, 'text') },
  // Path traversal and local file inclusion.
  { id: 'lfi-traversal', family: 'lfi', severity: 'critical', pl: 1, prose: true, test: (d, c) => (c.prose ? TRAVERSAL_PROSE.test(d.text) : TRAVERSAL.test(d.text)) },
  { id: 'lfi-os-files', family: 'lfi', severity: 'critical', pl: 1, prose: true, test: (d, c) => (c.prose ? /(?:\.\.\/|^|\s)\/etc\/(?:passwd|shadow)\b|\/proc\/self\/|\bboot\.ini\b|\bwin\.ini\b|\bid_rsa\b/.test(d.text) : OS_FILES.test(d.text) || OS_FILES.test(d.compact)) },
  { id: 'lfi-restricted-file', family: 'lfi', severity: 'critical', pl: 2, kinds: ['path', 'value', 'filename', 'header'], test: re(RESTRICTED_FILE, 'text') },
  { id: 'lfi-hidden-path', family: 'lfi', severity: 'critical', pl: 1, kinds: ['path'], test: re(DOT_SEGMENT, 'text') },
  { id: 'lfi-backup-file', family: 'lfi', severity: 'critical', pl: 2, kinds: ['path', 'filename'], test: re(BACKUP_EXTENSION, 'text') },
  { id: 'lfi-backup-value', family: 'lfi', severity: 'critical', pl: 3, kinds: ['value', 'header', 'cookie'], test: re(/^[\w.\/\\-]+\.(?:sql|bak|old|swp|db|rdb|dump|pem|key|env|ini|conf)(?:\.(?:zip|gz|tgz|tar|7z|rar|bz2))?$/, 'text') },
  // Remote file inclusion and request forgery.
  { id: 'rfi-scheme', family: 'rfi', severity: 'critical', pl: 1, test: re(RFI_SCHEMES, 'text') },
  { id: 'rfi-trailing-question', family: 'rfi', severity: 'critical', pl: 2, kinds: ['value', 'name', 'header', 'cookie'], test: re(URL_TRAILING_QUESTION, 'text') },
  { id: 'rfi-ip-host', family: 'rfi', severity: 'critical', pl: 1, kinds: ['value', 'name', 'header', 'cookie', 'path', 'ws'], test: (d, c) => (c.header === 'host' || c.header === 'origin' || c.header === 'referer' ? false : URL_WITH_IP.test(d.text.replace(/\burn:oid:[\d.]+/g, '')) || URL_DECIMAL_HOST.test(d.text)) },
  { id: 'rfi-offsite-url', family: 'rfi', severity: 'critical', pl: 3, kinds: ['value', 'name', 'cookie'], test: re(URL_OFFSITE, 'text') },
  { id: 'ssrf-localhost', family: 'rfi', severity: 'critical', pl: 3, kinds: ['value', 'name', 'cookie'], test: re(LOCALHOST_URL, 'text') },
  // OS command injection.
  { id: 'rce-command-after-separator', family: 'rce', severity: 'critical', pl: 1, test: (d, c) => (c.prose ? false : COMMAND_AFTER_META.test(d.compact) || COMMAND_AFTER_META.test(d.text)) },
  { id: 'rce-command-prose', family: 'rce', severity: 'critical', pl: 1, prose: true, test: (d, c) => c.prose && /(?:;|\|\||&&|\||`|\$\()\s*(?:cat|ls|id|whoami|uname|wget|curl|nc|bash|sh|python3?|perl|rm\s+-|chmod|ping\s+-|powershell|cmd(?:\.exe)?)(?:\s+[-\/$]|\s*[;|`)]|\s*$)/.test(d.compact) },
  { id: 'rce-command-at-start', family: 'rce', severity: 'critical', pl: 3, kinds: ['value', 'header', 'cookie', 'name'], test: (d, c) => !c.prose && (COMMAND_AT_START.test(d.compact) || COMMAND_AT_START.test(d.text)) },
  { id: 'rce-shell-path', family: 'rce', severity: 'critical', pl: 1, test: (d, c) => !c.prose && (SHELL_PATHS.test(d.text) || SHELL_PATHS.test(d.compact)) },
  { id: 'rce-shell-expansion', family: 'rce', severity: 'critical', pl: 1, prose: true, test: (d, c) => (c.prose ? /\$\([a-z]+[^)]*\)|`(?:cat|ls|id|whoami|uname|wget|curl)\b[^`]*`|\$\{ifs\}/.test(d.text) : SHELL_EXPANSION.test(d.text) || SHELL_EXPANSION.test(d.compact)) },
  { id: 'rce-shell-glob', family: 'rce', severity: 'critical', pl: 2, test: (d, c) => !c.prose && (SHELL_GLOB_PATH.test(d.compact) || /\/[a-z]*\[[^\]\/\s]+\][a-z]*/.test(d.compact)) },
  { id: 'rce-fork-bomb', family: 'rce', severity: 'critical', pl: 1, prose: true, test: re(FORK_BOMB, 'both') },
  { id: 'rce-windows', family: 'rce', severity: 'critical', pl: 1, test: (d, c) => !c.prose && (WINDOWS_CMD.test(d.text) || WINDOWS_CMD.test(d.compact)) },
  { id: 'rce-powershell', family: 'rce', severity: 'critical', pl: 1, prose: true, test: re(POWERSHELL, 'both') },
  { id: 'rce-shell-meta', family: 'rce', severity: 'critical', pl: 3, kinds: ['value', 'header', 'cookie', 'name'], test: (d, c) => !c.prose && /(?:^|[^\\])[;|`]\s*[a-z\\$~.\/]|^\s*[~\\][a-z+-]|^\s*\.\s*[|&(]|\|\s*$|[<>]\s*\/[a-z]|^\s*[;&|]/.test(d.text) },
  { id: 'rce-mail-command', family: 'rce', severity: 'critical', pl: 1, kinds: ['value', 'name', 'header', 'cookie'], test: (d, c) => !c.prose && MAIL_COMMAND.test(d.text) },
  { id: 'rce-newline-command', family: 'rce', severity: 'error', pl: 3, kinds: ['value'], test: (d, c) => !c.prose && /[\r\n]\s*[a-z]/.test(d.text) },
  // PHP.
  { id: 'php-open-tag', family: 'php', severity: 'critical', pl: 1, prose: true, test: re(PHP_OPEN_TAG, 'text') },
  { id: 'php-wrapper', family: 'php', severity: 'critical', pl: 1, prose: true, test: re(PHP_WRAPPER, 'text') },
  { id: 'php-function-call', family: 'php', severity: 'critical', pl: 1, test: (d, c) => !c.prose && (PHP_CALL.test(d.text) || PHP_CALL.test(d.compact) || PHP_CALL.test(d.compact.replace(/['"\s.]/g, ''))) },
  { id: 'php-function-name', family: 'php', severity: 'critical', pl: 2, test: (d, c) => !c.prose && (PHP_CALL_NAME.test(d.text) || PHP_CALL_NAME.test(d.compact)) },
  { id: 'php-variable-call', family: 'php', severity: 'critical', pl: 1, test: (d, c) => !c.prose && (PHP_VARIABLE_CALL.test(d.text) || PHP_VARIABLE_CALL.test(d.compact) || (/\$[a-z_][\s\S]*(?:\/\/|#)[^\n]*\n/.test(d.text) && PHP_VARIABLE_CALL.test(d.text.replace(/(?:\/\/|#)[^\n]*\n/g, ' ')))) },
  { id: 'php-serialized', family: 'php', severity: 'critical', pl: 1, prose: true, test: re(PHP_SERIALIZED, 'text') },
  { id: 'php-ini-directive', family: 'php', severity: 'critical', pl: 1, test: (d, c) => !c.prose && PHP_INI.test(d.text) },
  { id: 'php-string-call', family: 'php', severity: 'critical', pl: 2, test: (d, c) => !c.prose && (PHP_STRING_CALL.test(d.text) || /\(\s*(?:system|exec|passthru|assert|eval)\s*\)\s*\(/.test(d.compact) || PHP_CALL.test(d.compact.replace(/[()'".\s]|\/\*.*?\*\//g, ''))) },
  { id: 'php-script-upload', family: 'php', severity: 'critical', pl: 1, kinds: ['filename', 'path'], test: (d) => PHP_FILE_EXT.test(d.text) || PHP_FILE_EXT.test(d.text.replace(/\s+/g, '')) || PHP_SESSION_FILE.test(d.text) },
  // Java, expression languages, log4shell.
  { id: 'java-jndi-lookup', family: 'java', severity: 'critical', pl: 1, prose: true, test: (d) => JNDI.test(d.text) || JNDI.test(d.compact) || JNDI.test(stripLookups(d.text)) },
  { id: 'java-expression-language', family: 'java', severity: 'critical', pl: 1, test: (d, c) => !c.prose && (EXPRESSION_LANGUAGE.test(d.text) || EXPRESSION_LANGUAGE.test(d.compact)) },
  { id: 'java-class-name', family: 'java', severity: 'critical', pl: 1, test: (d, c) => !c.prose && JAVA_CLASS.test(d.text) },
  { id: 'java-gadget', family: 'java', severity: 'critical', pl: 1, test: (d, c) => !c.prose && JAVA_GADGET_DOTTED.test(d.text) },
  { id: 'java-serialized', family: 'java', severity: 'critical', pl: 1, prose: true, test: (d) => JAVA_SERIALIZED.test(d.raw) || JAVA_SERIALIZED.test(d.text) },
  { id: 'java-base64-gadget', family: 'java', severity: 'critical', pl: 2, test: (d, c) => !c.prose && base64Payloads(d.decoded).some((p) => JAVA_GADGETS.test(p) || JAVA_CLASS.test(p) || /\b(?:eval|system|exec|while\s*\(|require\s*\(|_\$\$nd_func)/.test(p)) },
  // Template, Node.js, Python, Perl and other code injection.
  { id: 'code-template', family: 'injection', severity: 'critical', pl: 1, test: (d, c) => !c.prose && TEMPLATE.test(d.text) },
  { id: 'code-template-prose', family: 'injection', severity: 'critical', pl: 1, prose: true, test: (d, c) => c.prose && /\{\{[^}]*(?:\||\.|\(|\[|\*|__)[^}]*\}\}|\{%\s*(?:if|for|import|include|set|raw|macro|print|exec)\b|\$\{[^}]*[(.][^}]*\}|#\{[^}]*[(.][^}]*\}/.test(d.text) },
  { id: 'code-nodejs', family: 'injection', severity: 'critical', pl: 1, test: (d, c) => !c.prose && (NODE_INJECTION.test(d.text) || NODE_INJECTION.test(d.compact)) },
  { id: 'code-python', family: 'injection', severity: 'critical', pl: 1, test: (d, c) => !c.prose && (PYTHON_INJECTION.test(d.text) || PYTHON_INJECTION.test(d.compact)) },
  { id: 'code-perl', family: 'injection', severity: 'critical', pl: 1, test: (d, c) => !c.prose && PERL_INJECTION.test(d.text) },
  { id: 'code-orm-lookup', family: 'injection', severity: 'critical', pl: 1, kinds: ['name'], test: re(ORM_LOOKUP, 'text') },
  { id: 'code-prototype-pollution', family: 'injection', severity: 'critical', pl: 1, kinds: ['name', 'value', 'cookie', 'header'], test: re(/__proto__|\bconstructor\s*[.\[]\s*["']?prototype|\[\s*["']?(?:__proto__|constructor|prototype)["']?\s*\]/, 'text') },
  { id: 'code-base64-payload', family: 'injection', severity: 'critical', pl: 3, kinds: ['value', 'cookie'], test: (d) => base64Payloads(d.decoded).some((p) => /\b(?:while\s*\(|eval\s*\(|system\s*\(|exec\s*\(|\$\$nd_func|require\s*\()|<script|\$\{jndi/.test(p)) },
  { id: 'ldap-injection', family: 'injection', severity: 'critical', pl: 2, kinds: ['value', 'name', 'cookie'], test: (d, c) => !c.prose && LDAP_INJECTION.test(d.text) },
  // Protocol attacks carried inside values: header injection, response splitting, smuggled requests.
  { id: 'protocol-crlf-injection', family: 'protocol', severity: 'critical', pl: 1, kinds: ['value', 'name', 'header', 'cookie', 'path'], test: (d, c) => !c.prose && CRLF_HEADER.test(d.text) },
  { id: 'protocol-newline-in-name', family: 'protocol', severity: 'critical', pl: 1, kinds: ['name', 'path', 'filename'], test: (d) => /[\r\n]/.test(d.text) },
  { id: 'protocol-embedded-request', family: 'protocol', severity: 'critical', pl: 1, test: (d, c) => !c.prose && HTTP_REQUEST_IN_VALUE.test(d.text) },
  { id: 'protocol-meta-refresh', family: 'protocol', severity: 'critical', pl: 1, prose: true, test: re(META_REFRESH, 'text') },
  { id: 'protocol-method-override', family: 'protocol', severity: 'critical', pl: 1, kinds: ['name'], test: (d) => METHOD_OVERRIDE_NAME.test(d.text) },
  // A parameter name that holds "=" or "&" once decoded: a second parser would split it differently.
  { id: 'protocol-delimiter-in-name', family: 'protocol', severity: 'notice', pl: 1, kinds: ['name'], test: (d) => /[=&]/.test(d.text) && !/[=&]/.test(d.raw) },
  { id: 'protocol-nul-byte', family: 'protocol', severity: 'critical', pl: 1, prose: true, test: (d) => d.nul },
  { id: 'protocol-control-chars', family: 'protocol', severity: 'critical', pl: 1, kinds: ['value', 'name', 'header', 'cookie', 'path', 'filename'], test: (d, c) => !c.prose && d.control },
  { id: 'protocol-overlong-encoding', family: 'protocol', severity: 'critical', pl: 1, prose: true, test: (d) => d.overlong },
  { id: 'protocol-multiple-encoding', family: 'protocol', severity: 'error', pl: 2, test: (d) => d.multiEncoded },
  { id: 'protocol-invalid-utf8', family: 'protocol', severity: 'critical', pl: 1, kinds: ['value', 'name', 'path', 'cookie', 'filename'], test: (d) => d.badUtf8 },
  { id: 'protocol-unicode-escape', family: 'protocol', severity: 'critical', pl: 3, kinds: ['value', 'name'], test: (d) => /(?:\\|%5c)u[0-9a-f]{4}|%u[0-9a-f]{4}/i.test(d.raw) },
  { id: 'php-function-in-path', family: 'php', severity: 'critical', pl: 3, kinds: ['path'], test: re(/[a-z_][a-z0-9_]*\s*\(/, 'text') },
  // Session fixation: a session identifier planted in a parameter, or a cookie set from a value.
  { id: 'session-fixation-set-cookie', family: 'session-fixation', severity: 'critical', pl: 1, test: (d, c) => !c.prose && SET_COOKIE_IN_VALUE.test(d.text) },
  { id: 'session-fixation-id-param', family: 'session-fixation', severity: 'critical', pl: 2, kinds: ['name'], test: (d) => SESSION_ID_NAMES.test(d.text) },
];

/** ${${lower:j}ndi:…}, ${::-j}: log4j resolves nested lookups before it reads "jndi". */
function stripLookups(text: string): string {
  if (!text.includes('${')) return text;
  let s = text;
  for (let i = 0; i < 4; i++) {
    const next = s.replace(/\$\{(?:lower|upper|::-|env:[^:}]*:-|sys:[^:}]*:-|date:'?|[a-z]*:-)([^${}]*)\}/g, '$1').replace(/\$\{::-([^}]*)\}/g, '$1');
    if (next === s) break;
    s = next;
  }
  return s;
}

/** Every rule a value trips, in its context. */
export function inspectValue(d: Decoding, ctx: ValueContext, hits: Hit[]): void {
  for (const rule of RULES) {
    if (rule.pl > ctx.pl) continue;
    if (ctx.prose && !rule.prose) continue;
    if (rule.kinds && !rule.kinds.includes(ctx.kind)) continue;
    if (rule.test(d, ctx)) hits.push({ rule: rule.id, family: rule.family, severity: rule.severity });
  }
}
