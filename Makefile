# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FLASK := $(BIN)/flask --app app
HOST ?= 127.0.0.1
PORT ?= 5000
# The local WeChat stand-in of `make run` (when no WECHAT_APP_ID is set): the port after PORT.
FAKE_WECHAT_PORT ?= $(shell expr $(PORT) + 1)

.PHONY: install run test lint bench clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

# Without a WECHAT_APP_ID (environment or .env), `run` starts the local WeChat stand-in in the
# background (`wechat fake-api`, stopped with the server) and points WECHAT_API_BASE at it.
run: install
	$(FLASK) db upgrade
	$(FLASK) demo load
	@if [ -z "$$WECHAT_APP_ID" ] && ! grep -qs '^WECHAT_APP_ID=..*' .env; then \
	  $(FLASK) wechat fake-api --port $(FAKE_WECHAT_PORT) & fake=$$!; \
	  trap 'kill $$fake 2>/dev/null' EXIT INT TERM; \
	  export WECHAT_API_BASE=http://127.0.0.1:$(FAKE_WECHAT_PORT) WECHAT_OPEN_BASE=http://127.0.0.1:$(FAKE_WECHAT_PORT) \
	    WECHAT_APP_SECRET=local-stand-in \
	    MINIAPP_APP_ID=wx-local-miniapp MINIAPP_APP_SECRET=local-stand-in \
	    WECHAT_TEMPLATE_NOTICE=$${WECHAT_TEMPLATE_NOTICE:-local-notice} \
	    WECHAT_TEMPLATE_REMINDER=$${WECHAT_TEMPLATE_REMINDER:-local-reminder} \
	    WECHAT_TEMPLATE_GREETING=$${WECHAT_TEMPLATE_GREETING:-local-greeting} \
	    WECHAT_TEMPLATE_WISH=$${WECHAT_TEMPLATE_WISH:-local-wish} \
	    WECHAT_TEMPLATE_ACTIVITY=$${WECHAT_TEMPLATE_ACTIVITY:-local-activity}; \
	  sleep 1; \
	  echo; \
	  echo "No WECHAT_APP_ID set: WeChat's API is the local stand-in on http://127.0.0.1:$(FAKE_WECHAT_PORT)"; \
	  echo "  (any mini-program login code works; delivered messages are listed on that page)."; \
	fi; \
	echo; \
	echo "连心 is starting on http://$(HOST):$(PORT) (PORT=$(PORT); webhook: /wechat, API docs: /api/v1/docs)."; \
	echo "Talk to it from another terminal:  PORT=$(PORT) $(FLASK) wechat simulate"; \
	echo "   or one message:                 PORT=$(PORT) $(FLASK) wechat simulate --text 帮助"; \
	echo "A newcomer's walk through every door: docs/WALKTHROUGH.md"; \
	echo; \
	PUBLIC_BASE_URL=$${PUBLIC_BASE_URL:-http://$(HOST):$(PORT)} SCHEDULER_EMBEDDED=1 PORT=$(PORT) $(FLASK) run --host $(HOST) --port $(PORT)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache instance
