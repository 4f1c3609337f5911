;;; emacs_scenario.el --- driven by tests/e2e/test_emacs.py  -*- lexical-binding: t -*-

;; Run as `emacs --batch -l prelude.el -l emacs_scenario.el'.  The prelude sets the variables below
;; and loads README.md's eglot snippet.  Two scenarios, chosen by `code-kb-test-scenario':
;; - `code-kb-test-run' opens a file of the tiny repository, connects eglot to the real server, asks
;;   for completions at a cursor (raw requests and eglot's own `completion-at-point' function, whose
;;   edit it applies) and runs the snippet's status and reindex commands;
;; - `code-kb-test-next-edit-run' runs the snippet's `code-kb-next-edit' against a server whose test
;;   hook answers every prediction with a fixed edit: applied (RET), dismissed (another key), none.
;; Each writes what it saw as JSON.  Every path ends in `kill-emacs'.

(require 'eglot)
(require 'json)
(require 'cl-lib)

(defvar code-kb-test-out)     ; where the JSON goes
(defvar code-kb-test-file)    ; the file to open
(defvar code-kb-test-line)    ; 0-based line of the cursor
(defvar code-kb-test-column)  ; 0-based column of the cursor
(defvar code-kb-test-scenario #'code-kb-test-run)
(defvar code-kb-test-plain-file) ; next edits: a file where the test hook finds nothing to replace

(defvar code-kb-test-result nil "A plist of what was seen.")
(defvar code-kb-test-steps nil)

(defun code-kb-test-put (key value)
  (setq code-kb-test-result (plist-put code-kb-test-result key value)))

(defun code-kb-test-step (name)
  (push name code-kb-test-steps))

(defun code-kb-test-keep-log ()
  "Keep the server's stderr (its log) for a failing test to show; shutting down kills its buffer."
  (dolist (buffer (buffer-list))
    (when (string-match-p "\\` ?\\*EGLOT.*stderr\\*\\'" (buffer-name buffer))
      (code-kb-test-put :server_log (with-current-buffer buffer
                                      (buffer-substring-no-properties (point-min) (point-max)))))))

(defun code-kb-test-write ()
  (code-kb-test-put :steps (vconcat (reverse code-kb-test-steps)))
  (code-kb-test-keep-log)
  (with-temp-file code-kb-test-out
    (let ((json-encoding-pretty-print nil)
          (coding-system-for-write 'utf-8))
      (insert (json-encode code-kb-test-result)))))

(defun code-kb-test-goto ()
  (goto-char (point-min))
  (forward-line code-kb-test-line)
  (move-to-column code-kb-test-column))

(defun code-kb-test-line-text ()
  (buffer-substring-no-properties (line-beginning-position) (line-end-position)))

(defun code-kb-test-items (response)
  "The items of a completion response: a CompletionList or a bare array."
  (append (if (and (listp response) (plist-member response :items)) (plist-get response :items) response) nil))

(defun code-kb-test-connect ()
  "Open `code-kb-test-file', connect eglot to the server and return the server."
  ;; t: block until initialized (a number returns at the server's first output, stderr included)
  (setq eglot-sync-connect t
        eglot-connect-timeout 120
        jsonrpc-default-request-timeout 120)
  (code-kb-test-put :emacs emacs-version)
  (code-kb-test-put :eglot (let ((lib (locate-library "eglot"))) (and lib (file-name-nondirectory
                                                                         (directory-file-name (file-name-directory lib))))))
  (code-kb-test-step "open")
  (find-file code-kb-test-file)
  (code-kb-test-put :mode (symbol-name major-mode))

  (code-kb-test-step "connect")
  (apply #'eglot (eglot--guess-contact))  ; what M-x eglot does, without the prompts
  (with-timeout (120 (error "eglot did not connect in 120 s"))
    (while (not (eglot-current-server))
      (accept-process-output nil 0.1)))
  (let ((server (eglot-current-server)))
    (unless (and server (jsonrpc-running-p server))
      (error "eglot did not connect"))
    (code-kb-test-put :server_name (plist-get (eglot--server-info server) :name))
    server))

(defun code-kb-test-run ()
  (let ((server (code-kb-test-connect)))
    (code-kb-test-put :managed (if eglot--managed-mode t :json-false))
    (code-kb-test-put :inline_provider (if (eglot--server-capable :inlineCompletionProvider) t :json-false))

    (code-kb-test-step "textDocument/completion")
    (code-kb-test-goto)
    (let ((items (code-kb-test-items
                  (jsonrpc-request server :textDocument/completion (eglot--TextDocumentPositionParams)))))
      (code-kb-test-put :completion
                        (vconcat (mapcar (lambda (item)
                                           (list :label (plist-get item :label)
                                                 :new_text (plist-get (plist-get item :textEdit) :newText)))
                                         items))))

    (code-kb-test-step "textDocument/inlineCompletion")
    (let ((items (code-kb-test-items
                  (jsonrpc-request server :textDocument/inlineCompletion
                                   (append (eglot--TextDocumentPositionParams) '(:context (:triggerKind 1)))))))
      (code-kb-test-put :inline (vconcat (mapcar (lambda (item) (plist-get item :insertText)) items))))

    (code-kb-test-step "completion-at-point")
    (code-kb-test-goto)
    (let* ((capf (eglot-completion-at-point))
           (beg (nth 0 capf)) (end (nth 1 capf)) (table (nth 2 capf))
           (exit (plist-get (nthcdr 3 capf) :exit-function))
           (candidates (all-completions (buffer-substring-no-properties beg end) table)))
      (code-kb-test-put :capf_candidates (vconcat (mapcar #'substring-no-properties candidates)))
      ;; What a completion UI does on a choice: insert the candidate, then call the exit function,
      ;; which applies the item's textEdit.
      (let ((choice (car candidates)))
        (delete-region beg end)
        (goto-char beg)
        (insert choice)
        (funcall exit choice 'finished))
      (code-kb-test-goto)
      (let ((n (length (split-string (plist-get (aref (plist-get code-kb-test-result :completion) 0) :new_text)
                                     "\n"))))
        (code-kb-test-put :line_after_capf
                          (buffer-substring-no-properties (line-beginning-position)
                                                          (save-excursion (forward-line (1- n))
                                                                          (line-end-position))))))

    (code-kb-test-step "code-kb-status")
    (let ((status (jsonrpc-request server :workspace/executeCommand '(:command "codeKb.status"))))
      (code-kb-test-put :model_loaded (if (eq (plist-get (plist-get status :model) :loaded) t) t :json-false))
      (code-kb-test-put :roots (vconcat (mapcar (lambda (i) (plist-get i :root))
                                                (plist-get status :indexes)))))
    (code-kb-test-status-command)

    (code-kb-test-step "code-kb-reindex")
    (let ((inhibit-message nil))
      (code-kb-test-put :reindex_message (code-kb-reindex)))

    (code-kb-test-step "shutdown")
    (code-kb-test-keep-log)
    (eglot-shutdown server)
    (code-kb-test-put :shut_down (if (jsonrpc-running-p server) :json-false t))))

(defun code-kb-test-status-command ()
  "Run the README's `code-kb-status' and read the buffer it shows."
  (code-kb-status)
  (code-kb-test-put :status_buffer
                    (with-current-buffer "*code-kb status*"
                      (buffer-substring-no-properties (point-min) (point-max)))))

;;; Next edits

(defvar code-kb-test-keys nil "What the coming `read-key' calls answer, one key each.")
(defvar code-kb-test-previews nil "What each `read-key' call had on screen, newest first.")

(defun code-kb-test-preview ()
  "The next-edit previews (overlays marked `code-kb-next-edit') in the current buffer."
  (vconcat
   (mapcar (lambda (ov)
             (let ((face (overlay-get ov 'face)))
               (list :start (overlay-start ov)
                     :removed (buffer-substring-no-properties (overlay-start ov) (overlay-end ov))
                     :added (substring-no-properties (or (overlay-get ov 'after-string) ""))
                     :struck (if (and (listp face) (plist-get face :strike-through)) t :json-false))))
           (seq-filter (lambda (ov) (overlay-get ov 'code-kb-next-edit))
                       (overlays-in (point-min) (point-max))))))

(defun code-kb-test-read-key (read-key &optional prompt &rest args)
  "Around `read-key': note the preview and the prompt, then answer with the next of
`code-kb-test-keys' as if typed (batch Emacs reads no keyboard)."
  (push (list :prompt prompt :point (point) :previews (code-kb-test-preview)) code-kb-test-previews)
  (unless code-kb-test-keys
    (error "read-key called with no answer left"))
  (setq unread-command-events (list (pop code-kb-test-keys)))
  (apply read-key prompt args))

(defun code-kb-test-next-edit (key)
  "Run `code-kb-next-edit' as M-x does, with KEY the answer to its prompt (nil: none expected).
Returns what it returned."
  (setq code-kb-test-keys (and key (list key)))
  (prog1 (call-interactively #'code-kb-next-edit)
    (when code-kb-test-keys
      (error "code-kb-next-edit did not ask"))))

(defun code-kb-test-next-edit-run ()
  (advice-add 'read-key :around #'code-kb-test-read-key)
  (code-kb-test-step "not connected")
  (code-kb-test-put :not_connected (with-temp-buffer
                                     (condition-case err
                                         (progn (code-kb-next-edit) "no error")
                                       (user-error (cadr err)))))
  (let ((server (code-kb-test-connect)))
    (code-kb-test-step "a change eglot has not sent yet")
    ;; The command must send it first: for a version it has not seen the server answers no edits.
    (goto-char (point-min))
    (search-forward "total)")
    (backward-char)
    (insert ", price")
    (code-kb-test-put :pending (if eglot--recent-changes t :json-false))

    (code-kb-test-step "next edit, applied")
    (code-kb-test-put :applied (code-kb-test-next-edit ?\r))
    (code-kb-test-put :text_applied (buffer-substring-no-properties (point-min) (point-max)))
    (code-kb-test-put :point_applied (point))
    (code-kb-test-put :previews_left_applied (code-kb-test-preview))

    (code-kb-test-step "next edit, dismissed")
    (goto-char (point-max))
    (code-kb-test-put :point_before_dismissed (point))
    (code-kb-test-put :dismissed (code-kb-test-next-edit ?n))
    (code-kb-test-put :text_dismissed (buffer-substring-no-properties (point-min) (point-max)))
    (code-kb-test-put :point_dismissed (point))
    (code-kb-test-put :previews_left_dismissed (code-kb-test-preview))

    (code-kb-test-step "no next edit")
    (find-file code-kb-test-plain-file)
    (code-kb-test-put :plain_managed (if (eq (eglot-current-server) server) t :json-false))
    (let ((before (buffer-substring-no-properties (point-min) (point-max))))
      (code-kb-test-put :none (code-kb-test-next-edit nil))
      (code-kb-test-put :plain_unchanged (if (equal before (buffer-substring-no-properties (point-min) (point-max)))
                                             t
                                           :json-false)))

    (code-kb-test-put :prompts (vconcat (reverse code-kb-test-previews)))
    (code-kb-test-step "code-kb-status")
    (code-kb-test-put :next_edit_status
                      (plist-get (jsonrpc-request server :workspace/executeCommand '(:command "codeKb.status"))
                                 :next_edit))
    (code-kb-test-step "shutdown")
    (code-kb-test-keep-log)
    (eglot-shutdown server)))

(condition-case err
    (progn
      (funcall code-kb-test-scenario)
      (code-kb-test-step "done"))
  (t (code-kb-test-put :error (format "%S" err))))  ; t: a quit too
(code-kb-test-write)
(kill-emacs 0)

;;; emacs_scenario.el ends here
