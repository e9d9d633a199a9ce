# Long-lived R worker serving R model artefacts to the Python registry (apps/registry/runtimes/r.py).
#
# Started as `Rscript --vanilla r_worker.R`, it reads requests on stdin (a JSON line, then for a binary
# prediction `payload_bytes` raw bytes) and writes one JSON reply line per request on stdout, until stdin
# closes (the Python process went away), so it never outlives its parent. Protocol: docs/r-runtime.md.
#
# Why a worker and not rpy2: rpy2 3.6 does not load against R 4.2, and a separate process keeps R's
# memory, threads and crashes out of the web or Celery process; a crash costs one restart, not the server.
#
# Every request is handled inside tryCatch: a bad model, a bad request or a failing predict method
# answers {"ok": false, "error": ...} and the worker goes on.

options(warn = 1L, stringsAsFactors = FALSE, keep.source = FALSE)

# The protocol owns the real stdout. Everything else R or a package prints (print(), cat(), progress
# bars, startup banners) is diverted to stderr by sink(), so it can never corrupt a response line.
# stdout() must be captured before sink(): afterwards it names the sink target.
.protocol_out <- stdout()
sink(stderr(), type = "output")

if (!requireNamespace("jsonlite", quietly = TRUE)) {
  message("r_worker: the R package jsonlite is required (Debian: r-cran-jsonlite)")
  quit(save = "no", status = 3L)
}

# Loaded models, keyed by the artefact's sha256 (the Python side verifies the bytes before a load).
.models <- new.env(hash = TRUE, parent = emptyenv())

# Classes whose predict method lives in a package named differently from the class.
.class_packages <- c(
  randomForest.formula = "randomForest",
  ranger = "ranger",
  rpart = "rpart"
)

json_value <- function(x) {
  as.character(jsonlite::toJSON(x, auto_unbox = TRUE, null = "null", na = "null", digits = NA))
}

# A response line: `fields` is a named list serialised by jsonlite, `raw` holds pre-serialised JSON
# fragments (the prediction vector, written by hand for exact round-trips).
response_line <- function(id, fields, raw = list()) {
  parts <- c(sprintf('"id":%s', json_value(id)))
  for (name in names(fields)) {
    parts <- c(parts, sprintf('"%s":%s', name, json_value(fields[[name]])))
  }
  for (name in names(raw)) {
    parts <- c(parts, sprintf('"%s":%s', name, raw[[name]]))
  }
  paste0("{", paste(parts, collapse = ","), "}")
}

# Doubles as JSON with 17 significant digits, which round-trip exactly to IEEE 754 in Python.
# NA/NaN become null (NaN on the Python side); infinities become 1e999, which Python parses as inf.
numbers_json <- function(x) {
  out <- sprintf("%.17g", x)
  out[is.na(x)] <- "null"
  out[is.infinite(x) & x > 0] <- "1e999"
  out[is.infinite(x) & x < 0] <- "-1e999"
  paste0("[", paste(out, collapse = ","), "]")
}

# Load the namespaces that provide methods for the object's classes, so S3 dispatch finds
# predict.randomForest & co. readRDS() restores the object but never loads its package.
load_model_namespaces <- function(obj) {
  candidates <- class(obj)
  s4_package <- attr(class(obj), "package")
  if (!is.null(s4_package)) candidates <- c(s4_package, candidates)
  for (cls in candidates) {
    package <- if (cls %in% names(.class_packages)) .class_packages[[cls]] else cls
    if (nzchar(system.file(package = package))) {
      suppressPackageStartupMessages(requireNamespace(package, quietly = TRUE))
    }
  }
  invisible(NULL)
}

has_predict_method <- function(obj) {
  if (isS4(obj) && methods::hasMethod("predict", class(obj))) return(TRUE)
  for (cls in class(obj)) {
    if (!is.null(utils::getS3method("predict", cls, optional = TRUE))) return(TRUE)
  }
  FALSE
}

# RData files start (after decompression) with RDX2/RDX3 (or RDA/RDB); .rds files with X\n, A\n or B\n.
# gzfile() reads gzip, bzip2, xz and uncompressed files alike.
is_rdata_file <- function(path) {
  con <- gzfile(path, "rb")
  on.exit(close(con))
  magic <- readBin(con, "raw", 5L)
  length(magic) == 5L &&
    identical(magic[1:2], charToRaw("RD")) &&
    magic[3] %in% charToRaw("XAB") &&
    magic[5] == charToRaw("\n")
}

read_model <- function(path) {
  if (!file.exists(path)) stop("file not found: ", path, call. = FALSE)
  if (is_rdata_file(path)) {
    env <- new.env(parent = globalenv())
    object_names <- load(path, envir = env)
    if (length(object_names) == 0L) stop("the RData file holds no objects", call. = FALSE)
    if (length(object_names) == 1L) return(list(model = get(object_names, envir = env), format = "RData"))
    for (name in object_names) load_model_namespaces(get(name, envir = env))
    with_method <- Filter(function(name) has_predict_method(get(name, envir = env)), object_names)
    if (length(with_method) == 1L) return(list(model = get(with_method, envir = env), format = "RData"))
    stop(sprintf(
      "the RData file holds %d objects (%s) and %d of them have a predict method; expected exactly one model",
      length(object_names), paste(object_names, collapse = ", "), length(with_method)
    ), call. = FALSE)
  }
  list(model = readRDS(path), format = "rds")
}

# The input variables the model reads by name, when the model says so (NULL when it does not).
model_variables <- function(m) {
  vars <- tryCatch({
    if (inherits(m, "ranger")) {
      m$forest$independent.variable.names
    } else if (inherits(m, "randomForest") && is.null(m$terms)) {
      # x/y interface: predict.randomForest selects newdata's columns by these names
      if (is.null(dim(m$importance))) names(m$importance) else rownames(m$importance)
    } else {
      tt <- stats::terms(m)
      all.vars(stats::delete.response(tt))
    }
  }, error = function(e) NULL)
  if (is.null(vars) || !is.character(vars) || length(vars) == 0L || "." %in% vars) NULL else unname(vars)
}

op_load <- function(req) {
  key <- req[["key"]]
  path <- req[["path"]]
  if (!is.character(key) || length(key) != 1L || !nzchar(key)) stop("load: 'key' must be a string", call. = FALSE)
  if (!is.character(path) || length(path) != 1L) stop("load: 'path' must be a string", call. = FALSE)
  loaded <- read_model(path)
  model <- loaded$model
  load_model_namespaces(model)
  if (!has_predict_method(model)) {
    stop(sprintf(
      "no predict method for an object of class %s (is the package that made it installed?)",
      paste(class(model), collapse = "/")
    ), call. = FALSE)
  }
  if (inherits(model, "ranger") && !is.null(model$treetype) && model$treetype != "Regression") {
    stop(sprintf("ranger %s forests are not served; only regression forests predict numbers", model$treetype),
         call. = FALSE)
  }
  assign(key, model, envir = .models)
  list(
    class = I(class(model)),
    format = loaded$format,
    variables = if (is.null(vars <- model_variables(model))) NULL else I(vars)
  )
}

as_numeric_column <- function(x, name) {
  if (is.null(x) || length(x) == 0L) return(numeric(0))
  if (is.list(x)) {
    if (!all(vapply(x, function(v) is.null(v) || (is.numeric(v) && length(v) == 1L), logical(1)))) {
      stop(sprintf("column '%s' holds values that are not numbers", name), call. = FALSE)
    }
    return(vapply(x, function(v) if (is.null(v)) NA_real_ else as.double(v), numeric(1)))
  }
  if (is.logical(x) && all(is.na(x))) return(rep(NA_real_, length(x)))
  if (!is.numeric(x)) stop(sprintf("column '%s' holds values that are not numbers", name), call. = FALSE)
  as.double(x)
}

# The binary payload of a predict request: the columns one after the other, each `rows` little-endian
# IEEE 754 doubles. Exact, and far cheaper than numbers as JSON text (see docs/r-runtime.md).
# NaN (Python's missing value) becomes NA, R's missing value.
decode_payload <- function(payload, columns, rows) {
  if (!is.numeric(rows) || length(rows) != 1L || rows < 0) stop("predict: 'rows' must be a count", call. = FALSE)
  expected <- 8 * rows * length(columns)
  if (length(payload) != expected) {
    stop(sprintf("predict: %d payload bytes for %d rows x %d columns (expected %d)",
                 length(payload), rows, length(columns), expected), call. = FALSE)
  }
  values <- readBin(payload, "double", n = rows * length(columns), size = 8L, endian = "little")
  values[is.nan(values)] <- NA_real_
  starts <- (seq_along(columns) - 1L) * rows
  lapply(starts, function(start) values[start + seq_len(rows)])
}

# Predictions for the reply line: base64 of little-endian doubles (NA stays NA, which Python reads as NaN).
encode_f64 <- function(x) {
  gsub("\n", "", jsonlite::base64_enc(writeBin(as.double(x), raw(), size = 8L, endian = "little")), fixed = TRUE)
}

predict_numeric <- function(model, df) {
  if (inherits(model, "ranger")) {
    p <- stats::predict(model, data = df)$predictions
  } else {
    p <- stats::predict(model, newdata = df)
  }
  if (is.data.frame(p)) {
    if (ncol(p) != 1L) stop(sprintf("predict returned a data frame with %d columns; expected one", ncol(p)), call. = FALSE)
    p <- p[[1L]]
  }
  if (is.matrix(p)) {
    if (ncol(p) != 1L) stop(sprintf("predict returned a matrix with %d columns; expected one", ncol(p)), call. = FALSE)
    p <- p[, 1L]
  }
  if (is.factor(p)) stop("predict returned a factor (a classification model?); only numeric predictions are served", call. = FALSE)
  if (!is.numeric(p)) stop(sprintf("predict returned %s, not numbers", class(p)[1L]), call. = FALSE)
  if (length(p) != nrow(df)) {
    stop(sprintf("predict returned %d values for %d rows", length(p), nrow(df)), call. = FALSE)
  }
  as.double(unname(p))
}

op_predict <- function(req, payload) {
  key <- req[["key"]]
  if (!is.character(key) || length(key) != 1L) stop("predict: 'key' must be a string", call. = FALSE)
  model <- get0(key, envir = .models, inherits = FALSE)
  if (is.null(model)) stop(sprintf("model %s is not loaded", key), call. = FALSE)
  columns <- req[["columns"]]
  if (!is.character(columns) || length(columns) == 0L) stop("predict: 'columns' must be a non-empty list of names", call. = FALSE)
  if (anyDuplicated(columns)) stop(sprintf("predict: duplicate column '%s'", columns[anyDuplicated(columns)]), call. = FALSE)
  binary <- !is.null(payload)
  if (binary) {
    cols <- decode_payload(payload, columns, req[["rows"]])
  } else {
    # Human-friendly form: "data" holds one JSON array per column, null for a missing value.
    data <- req[["data"]]
    if (!is.list(data) || length(data) != length(columns)) {
      stop(sprintf("predict: 'data' must hold one array per column (%d columns)", length(columns)), call. = FALSE)
    }
    cols <- Map(as_numeric_column, data, columns)
  }
  n <- length(cols[[1L]])
  if (any(vapply(cols, length, integer(1)) != n)) stop("predict: the columns do not all have the same length", call. = FALSE)
  names(cols) <- columns
  df <- list2DF(cols, nrow = n)
  started <- as.numeric(Sys.time())
  predictions <- if (n == 0L) numeric(0) else predict_numeric(model, df)
  timing <- list(rows = n, predict_seconds = as.numeric(Sys.time()) - started)
  if (binary) {
    c(timing, list(raw = list(predictions_f64le = sprintf('"%s"', encode_f64(predictions)))))
  } else {
    c(timing, list(raw = list(predictions = numbers_json(predictions))))
  }
}

# A request is one JSON line; when it has "payload_bytes", that many raw bytes follow the newline.
# The payload is read before anything can fail, so the stream stays in step whatever the request holds.
read_payload <- function(req, con) {
  size <- req[["payload_bytes"]]
  if (is.null(size)) return(NULL)
  if (!is.numeric(size) || length(size) != 1L || size < 0 || size > .Machine$integer.max) {
    stop("'payload_bytes' must be a byte count", call. = FALSE)
  }
  payload <- readBin(con, "raw", n = size)
  if (length(payload) != size) {
    .quit <<- TRUE  # stdin ended inside a payload: the client is gone
    stop("stdin ended inside a payload", call. = FALSE)
  }
  payload
}

handle <- function(line, con) {
  id <- NULL
  warnings <- character(0)
  result <- tryCatch(
    withCallingHandlers({
      req <- jsonlite::fromJSON(line, simplifyVector = TRUE, simplifyDataFrame = FALSE, simplifyMatrix = FALSE)
      if (!is.list(req) || is.null(req[["op"]])) stop("a request is a JSON object with an 'op'", call. = FALSE)
      id <- req[["id"]]
      payload <- read_payload(req, con)
      op <- req[["op"]]
      if (!is.character(op) || length(op) != 1L) stop("'op' must be a string", call. = FALSE)
      body <- switch(op,
        ping = list(
          r_version = paste(R.version$major, R.version$minor, sep = "."),
          pid = Sys.getpid(),
          loaded = length(ls(.models, all.names = TRUE))
        ),
        load = op_load(req),
        predict = op_predict(req, payload),
        packages = {
          wanted <- as.character(unlist(req[["names"]]))
          installed <- vapply(wanted, function(p) nzchar(system.file(package = p)), logical(1), USE.NAMES = FALSE)
          list(missing = I(wanted[!installed]))
        },
        quit = {
          .quit <<- TRUE
          list()
        },
        unload = {
          if (is.character(req[["key"]]) && exists(req[["key"]], envir = .models, inherits = FALSE)) rm(list = req[["key"]], envir = .models)
          list()
        },
        stop(sprintf("unknown op '%s'", op), call. = FALSE)
      )
      raw <- body$raw
      body$raw <- NULL
      response_line(id, c(list(ok = TRUE, warnings = I(warnings)), body), if (is.null(raw)) list() else raw)
    }, warning = function(w) {
      warnings <<- c(warnings, conditionMessage(w))
      invokeRestart("muffleWarning")
    }),
    error = function(e) {
      response_line(id, list(ok = FALSE, error = conditionMessage(e), warnings = I(warnings)))
    }
  )
  result
}

.quit <- FALSE
# Binary mode: request lines are read with readLines and payloads with readBin on the same connection.
stdin_con <- file("stdin", open = "rb")
repeat {
  line <- readLines(stdin_con, n = 1L, warn = FALSE, encoding = "UTF-8")
  if (length(line) == 0L) break  # stdin closed: the Python process is gone or closed us
  if (!nzchar(line)) next
  writeLines(handle(line, stdin_con), .protocol_out, useBytes = TRUE)
  flush(.protocol_out)
  if (.quit) break
}
