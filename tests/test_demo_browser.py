"""The demo page in a real browser (issue 15): headless Chromium from the distribution's packages,
driven by Selenium with the system chromedriver (nothing downloads a browser).

Screenshots are test artefacts: in this test's pytest tmp folder (printed), and also in
$SEQHF_SCREENSHOTS when it is set (CI can keep that folder).
"""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from test_demo import make_classifier_folder, make_generator_folder

pytestmark = pytest.mark.slow

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the `demo` and `dev` extras")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
REVIEW = "A wonderful film with great acting, although the story was boring"
PROMPT = "The island"
NEW_CHARACTERS = 2000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo-models")
    # A generator big enough (2 x 512) that 2,000 characters take seconds, so the page can be seen streaming.
    clf, lm = make_classifier_folder(folder / "clf"), make_generator_folder(folder / "lm", 512, 2)
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "TOKENIZERS_PARALLELISM": "false"}
    log = open(folder / "app.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "seqhf", "demo", "--classifier", str(clf), "--generator", str(lm),
         "--port", str(port)],  # fmt: skip
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 300  # importing gradio takes a while on a busy 2-core machine
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the demo exited with {proc.returncode}:\n{(folder / 'app.log').read_text()[-3000:]}")
            try:
                if urllib.request.urlopen(url, timeout=5).status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the demo did not answer on {url}:\n{(folder / 'app.log').read_text()[-3000:]}")
            time.sleep(1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip(
            "Chromium and its driver are not installed (Debian packages `chromium` and `chromium-driver`; "
            "scripts/setup_env.sh installs them where apt-get can)"
        )
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not fetch a browser or driver
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,1300"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    yield driver
    driver.quit()


def save_screenshot(driver, tmp_path, name):
    path = tmp_path / name
    driver.save_screenshot(str(path))
    if os.environ.get("SEQHF_SCREENSHOTS"):
        Path(os.environ["SEQHF_SCREENSHOTS"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(os.environ["SEQHF_SCREENSHOTS"]) / name)
    print(f"screenshot: {path}")
    return path


def test_classify_and_generate_in_chromium(app_url, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 120)
    browser.get(app_url)

    # Classify: type a review, read both labels and the shaded words.
    review = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#review textarea"))
    review.send_keys(REVIEW)
    browser.find_element(By.ID, "classify-button").click()
    labels = wait.until(
        lambda d: (lambda t: t if "positive" in t and "negative" in t and "%" in t else None)(d.find_element(By.ID, "labels").text)
    )
    percentages = [int(line.rstrip("%")) for line in labels.splitlines() if line.endswith("%")]
    assert len(percentages) == 2 and 98 <= sum(percentages) <= 102, labels
    shaded = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#shaded span.token") or None)
    words = [s.text.strip() for s in shaded if s.text.strip()]
    assert words == ["A", "wonderful", "film", "with", "great", "acting", ",", "although", "the", "story", "was", "boring"]
    colours = [s.value_of_css_property("background-color") for s in shaded]
    assert len({c for c in colours if c not in ("rgba(0, 0, 0, 0)", "transparent")}) > 1, colours  # shades differ
    save_screenshot(browser, tmp_path, "demo-classify.png")

    # Generate: the prompt, then the continuation streaming into the text box.
    next(t for t in browser.find_elements(By.CSS_SELECTOR, "button[role=tab]") if t.text == "Generate").click()
    prompt = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#prompt textarea, #prompt input"))
    prompt.clear()
    prompt.send_keys(PROMPT)
    length = browser.find_element(By.CSS_SELECTOR, "#length input[type=number]")
    length.send_keys(Keys.CONTROL, "a")
    length.send_keys(str(NEW_CHARACTERS), Keys.TAB)
    browser.find_element(By.ID, "generate-button").click()
    seen, stable_since = [], time.monotonic()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        value = browser.find_element(By.CSS_SELECTOR, "#generated textarea").get_attribute("value")
        if value and (not seen or value != seen[-1]):
            seen.append(value)
            stable_since = time.monotonic()
        if seen and time.monotonic() - stable_since > 3:
            break
        time.sleep(0.05)
    assert seen, "no text appeared"
    text = seen[-1]
    assert text.startswith(PROMPT) and len(text) > len(PROMPT) + NEW_CHARACTERS // 2, text  # specials are not shown
    assert all(text.startswith(v) for v in seen)  # every update was a prefix of the final text
    assert len(seen) >= 3, f"the text arrived in {len(seen)} update(s): it did not stream"
    save_screenshot(browser, tmp_path, "demo-generate.png")
