; #include <file.h> and #include "file.h": the path without brackets or quotes.
(preproc_include path: (_) @import.include)
