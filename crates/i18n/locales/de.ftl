# magiclinks Seiten und E-Mails auf Deutsch. Fehlt hier eine Meldung, gilt die englische
# (en.ftl). Eine Meldung ändern: sie (Id und neuer Text) in {templates.dir}/locales/de.ftl legen.

## Gemeinsam

# Eine Zeitspanne: `$unit` ist second, minute, hour oder day; `$count` wie viele, schon gerundet.
duration = { $unit ->
    [second] { $count ->
        [one] { $count } Sekunde
       *[other] { $count } Sekunden
    }
    [minute] { $count ->
        [one] { $count } Minute
       *[other] { $count } Minuten
    }
    [hour] { $count ->
        [one] { $count } Stunde
       *[other] { $count } Stunden
    }
   *[day] { $count ->
        [one] { $count } Tag
       *[other] { $count } Tage
    }
}
email-label = E-Mail-Adresse
sign-out-button = Abmelden
sign-in-with-email-link = Mit Ihrer E-Mail-Adresse anmelden
not-signed-in = Sie sind nicht angemeldet.
home-link = Startseite
sign-in-link = Anmelden

## Startseite

home-signed-in-as = Angemeldet als
home-account-link = Ihr Konto

## Anmeldeseite

sign-in-title = Anmelden
sign-in-heading = Bei { $site } anmelden
sign-in-button = Anmeldelink per E-Mail senden
sign-in-explainer = Kein Passwort nötig: Wir senden Ihnen einen Link, der Sie anmeldet. Er funktioniert einmal und läuft in { $duration } ab.

## „Prüfen Sie Ihre E-Mails“

check-email-title = Prüfen Sie Ihre E-Mails
check-email-sent-before = Wir haben einen Anmeldelink an
check-email-your-address = Ihre Adresse
check-email-sent-after = { " " }gesendet.
check-email-expires = Er läuft in { $duration } ab.
check-email-help-before = Öffnen Sie den Link auf diesem Gerät, um sich hier anzumelden. Nichts angekommen? Sehen Sie im Spam-Ordner nach, oder
check-email-help-link = fordern Sie einen neuen Link an
check-email-link-expired = Link und Code, die wir an
check-email-link-expired-after = { " " }gesendet haben, sind abgelaufen.
check-email-code-label = Lesen Sie die E-Mail auf einem anderen Gerät? Geben Sie den Code daraus ein:
check-email-code-button = Mit dem Code anmelden

## Abmeldeseite

sign-out-title = Abmelden
sign-out-signed-in-as = Sie sind angemeldet als
sign-out-question = In diesem Browser von { $site } abmelden?

## „Auf diesem Gerät anmelden?“ (Link in einem anderen Browser geöffnet)

confirm-title = Anmelden?
confirm-heading = Auf diesem Gerät als { $masked } anmelden?
confirm-other-account-before = Dieser Browser ist angemeldet als
confirm-other-account-after = . Wenn Sie fortfahren, werden Sie von diesem Konto abgemeldet und angemeldet als
confirm-same-account = Dieser Browser ist bereits angemeldet als
confirm-explainer = Es geschieht nichts, bis Sie auf die Schaltfläche drücken: Dieser Browser wartet nicht auf diesen Link (er wurde in einem anderen Browser angefordert, oder dieser Browser hat seitdem einen anderen Link angefordert). Auch Mail-Scanner öffnen Links; so verbrauchen sie Ihren nicht.
confirm-button = Auf diesem Gerät anmelden
confirm-not-me = Keine Anmeldung angefordert? Schließen Sie diese Seite: Es hat sich nichts geändert.

## „Sie sind bereits angemeldet“ (ein alter Link der angemeldeten Person)

signed-in-already-title = Sie sind bereits angemeldet
signed-in-already-as = Dieser Browser ist angemeldet als
signed-in-already-used = Der geöffnete Link wurde bereits verwendet; Sie brauchen ihn nicht mehr.
signed-in-already-replaced = Der geöffnete Link wurde durch einen neueren ersetzt; Sie brauchen ihn nicht mehr.
signed-in-already-expired = Der geöffnete Link ist abgelaufen; Sie brauchen ihn nicht mehr.
signed-in-already-continue = Weiter

## Anmeldeprobleme (Fehlerseite)

auth-error-title = Problem bei der Anmeldung
auth-error-used-heading = Dieser Link wurde bereits verwendet
auth-error-used-text = Jeder Anmeldelink funktioniert einmal. Wenn Sie das waren, sind Sie in jenem Browser angemeldet.
auth-error-used-new-link = Fordern Sie einen neuen Link an,
auth-error-used-new-link-after = um sich hier anzumelden.
auth-error-replaced-heading = Dieser Link wurde durch einen neueren ersetzt
auth-error-replaced-text = Nach diesem Link wurde ein neuerer Anmeldelink an dieselbe Adresse gesendet; nur der neuere funktioniert. Öffnen Sie die neueste E-Mail, oder
auth-error-expired-heading = Dieser Link ist abgelaufen
auth-error-expired-text = Anmeldelinks gelten { $duration }. Fordern Sie einen neuen an:
auth-error-expired-button = Neuen Link per E-Mail senden
auth-error-invalid-heading = Dieser Link ist ungültig
auth-error-invalid-text = Vielleicht wurde er unvollständig kopiert: Öffnen Sie ihn unverändert aus der E-Mail, oder
auth-error-invalid-link = fordern Sie einen neuen Link an
auth-error-dev-restart = In der Entwicklung: Der Dienst wurde mit einem erzeugten Geheimnis neu gestartet (kein AUTH_SECRET gesetzt), und vor einem Neustart gesendete Links funktionieren nicht mehr.
auth-error-other-text = Bei der Anmeldung ist etwas schiefgegangen.
auth-error-try-again = Erneut versuchen

## „Dieses Formular ist abgelaufen“ (CSRF)

csrf-error-title = Bitte neu laden
csrf-error-heading = Dieses Formular ist abgelaufen
csrf-error-text = Zu Ihrer Sicherheit wurde das Formular nicht angenommen: Es wurde in einer anderen Sitzung geöffnet oder ist veraltet. Laden Sie die Seite neu und versuchen Sie es noch einmal.
csrf-error-back = Zurück zur Anmeldung

## Kontoseite

account-title = Ihr Konto
account-signs-in-as = Sie melden sich an als
account-change-email-label = Anmeldeadresse ändern
account-change-email-button = Bestätigungslink senden
account-name-label = Ihr Name
account-name-button = Speichern
account-sessions-heading = Wo Sie angemeldet sind
account-sessions-device = Gerät
account-sessions-created = Angemeldet seit
account-sessions-last-used = Zuletzt verwendet
account-sessions-this-device = (dieses Gerät)
account-sessions-last-used-note = „Zuletzt verwendet“ wird höchstens einmal am Tag aktualisiert.
account-sessions-absolute-note = Eine Sitzung endet { $duration } nach der Anmeldung, wie oft sie auch verwendet wird; dann melden Sie sich erneut mit einem Link an.
account-revoke-others = Überall sonst abmelden
account-done-renamed = Ihr Name wurde gespeichert.
account-done-revoked = Diese Sitzung wurde abgemeldet.
account-done-others = Alle anderen Sitzungen wurden abgemeldet.
account-done-confirm-sent = Wir haben einen Link an die neue Adresse gesendet. Ihre Anmeldeadresse ändert sich, wenn Sie ihn öffnen.
account-done-email-changed = Ihre Anmeldeadresse wurde geändert.
account-same-address = Das ist bereits Ihre Anmeldeadresse.

## Neue Anmeldeadresse bestätigen

confirm-email-title = Anmeldeadresse ändern?
confirm-email-heading = Ab jetzt mit { $email } anmelden?
confirm-email-text = Sie haben angefragt, die Adresse zu ändern, mit der sich Ihr Konto anmeldet. Nichts ändert sich, bis Sie auf die Schaltfläche drücken; Ihre alte Adresse wird benachrichtigt.
confirm-email-button = { $email } verwenden
confirm-email-not-me = Nicht angefragt? Schließen Sie diese Seite: Es hat sich nichts geändert.

## E-Mail: der Anmeldelink

email-sign-in-subject = Bei { $site } anmelden
email-sign-in-heading = Bei { $site } anmelden
email-sign-in-intro = Öffnen Sie diesen Link, um sich anzumelden als { $to }
email-sign-in-button = Anmelden
email-paste-link = Oder fügen Sie diesen Link in Ihren Browser ein:
email-sign-in-code = Lesen Sie dies auf einem anderen Gerät? Geben Sie auf dem Gerät, auf dem Sie den Link angefordert haben, diesen Code ein:
email-link-once = Der Link funktioniert einmal und läuft in { $duration } ab. Er führt zu { $host }.
email-sign-in-ignore = Wenn Sie keine Anmeldung angefordert haben, können Sie diese E-Mail ignorieren: Ohne den Link kann sich niemand anmelden.

## E-Mail: neue Anmeldeadresse bestätigen (an die neue Adresse)

email-confirm-subject = Bestätigen Sie Ihre neue Anmeldeadresse für { $site }
email-confirm-heading = Bestätigen Sie Ihre neue Anmeldeadresse
email-confirm-intro = Jemand, der bei einem bestehenden Konto von { $site } angemeldet ist, möchte { $to } diesem Konto als Anmeldeadresse hinzufügen. Wenn Sie das waren, öffnen Sie diesen Link in dem Browser, in dem Sie bei diesem Konto angemeldet sind, um es zu bestätigen
email-confirm-button = Bestätigen
email-confirm-ignore = Wenn Sie das nicht angefragt haben, öffnen Sie den Link nicht: Eine Bestätigung würde dem anderen Konto erlauben, sich mit Ihrer Adresse anzumelden. Ignorieren Sie diese E-Mail; ohne den Link ändert sich nichts.

## E-Mail: die Anmeldeadresse wurde geändert (an die alte Adresse)

email-changed-subject = Ihre Anmeldeadresse bei { $site } wurde geändert
email-changed-heading = Ihre Anmeldeadresse wurde geändert
email-changed-text = Ihr Konto bei { $site } meldet sich nicht mehr mit { $to } an, sondern ab jetzt mit { $new_address }.
email-changed-not-me = Wenn Sie das nicht waren, wenden Sie sich sofort an die Betreiber von { $site }.

## Probleme: Titel und Details der Fehlerseiten (die Problemdokumente der JSON-API sind immer
## englisch).

problem-csrf-title = CSRF-Token fehlt oder ist ungültig
problem-csrf-detail = Holen Sie ein Token von GET { "{base}" }/csrf und senden Sie es mit seinem Cookie zurück: als csrfToken im Formular oder JSON-Körper, oder im Header X-CSRF-Token.
problem-bad-form-title = Der Inhalt der Anfrage ist kein lesbares Formular
problem-bad-form-detail = Senden Sie die Felder als application/x-www-form-urlencoded.
problem-bad-json-title = Der Inhalt der Anfrage ist kein zulässiges JSON
problem-bad-json-detail = Senden Sie ein JSON-Objekt, in dem jeder Schlüssel einmal vorkommt.
problem-bad-query-title = Ein Abfrageparameter ist nicht annehmbar
problem-as-is = { $text }
problem-invalid-email-title = Ungültige E-Mail-Adresse
problem-not-found-title = Seite nicht gefunden
problem-not-found-detail = Unter dieser Adresse gibt es nichts.
problem-signed-out-title = Nicht angemeldet
problem-signed-out-detail = Melden Sie sich zuerst an: Dafür ist das Sitzungscookie einer gültigen Sitzung nötig.
problem-no-such-session-title = Keine solche Sitzung
problem-no-such-session-detail = Sie haben keine Sitzung mit dieser Id; vielleicht ist sie schon beendet.
problem-method-not-allowed-title = Methode nicht erlaubt
problem-method-not-allowed-detail = Diese Adresse gibt es, aber nicht für diese Art Anfrage.
problem-code-title = Der Code hat Sie nicht angemeldet
problem-link-invalid-title = Dieser Anmeldelink ist ungültig
problem-link-invalid-detail = Vielleicht wurde er unvollständig kopiert oder verändert. Fordern Sie einen neuen an.
problem-link-used-title = Dieser Anmeldelink wurde bereits verwendet
problem-link-used-detail = Ein Link meldet einmal an. Fordern Sie einen neuen an.
problem-link-replaced-title = Dieser Anmeldelink wurde durch einen neueren ersetzt
problem-link-replaced-detail = An dieselbe Adresse wurde ein neuerer Link gesendet; nur dieser funktioniert. Verwenden Sie die neueste E-Mail.
problem-link-expired-title = Dieser Anmeldelink ist abgelaufen
problem-link-expired-detail = Links gelten nur wenige Minuten. Fordern Sie einen neuen an.
problem-address-change-invalid-title = Dieser Bestätigungslink ist ungültig
problem-address-change-invalid-detail = Vielleicht wurde er unvollständig kopiert oder durch eine neuere Anfrage ersetzt. Verwenden Sie die neueste E-Mail.
problem-address-change-used-title = Dieser Bestätigungslink wurde bereits verwendet
problem-address-change-used-detail = Ein Bestätigungslink funktioniert einmal; wenn Sie das waren, ist die Adresse geändert.
problem-address-change-expired-title = Dieser Bestätigungslink ist abgelaufen
problem-address-change-expired-detail = Fordern Sie die Änderung auf Ihrer Kontoseite erneut an.
problem-address-taken-title = Diese Adresse gehört zu einem anderen Konto
problem-address-taken-detail = Ein anderes Konto meldet sich inzwischen mit dieser Adresse an; es hat sich nichts geändert.
problem-address-change-not-requester-title = Melden Sie sich bei dem Konto an, das diese Änderung angefordert hat
problem-address-change-not-requester-detail = Nur das Konto, das diese Adresse verwenden möchte, kann sie bestätigen, in einem Browser, in dem Sie bei ihm angemeldet sind. Wenn Sie das nicht angefordert haben, bestätigen Sie nichts: Schließen Sie diese Seite und ignorieren Sie die E-Mail. Es hat sich nichts geändert.
problem-same-address-title = Das ist bereits Ihre Anmeldeadresse
problem-same-address-detail = Geben Sie die neue Adresse ein, mit der Sie sich anmelden möchten.
problem-rate-limited-title = Zu viele Anfragen
problem-payload-too-large-title = Anfrage zu groß
problem-payload-too-large-detail = Der Inhalt einer Anfrage darf höchstens { $limit } Bytes haben; ein Anmeldeformular braucht ein paar hundert.
problem-length-required-title = Länge erforderlich
problem-length-required-detail = Senden Sie den Inhalt mit einem Content-Length-Header.
problem-request-timeout-title = Zeitüberschreitung
problem-request-timeout-detail = Die Anfrage kam zu langsam an. Versuchen Sie es noch einmal.
problem-refused-title = Die Anfrage konnte nicht gelesen werden
problem-refused-detail = Prüfen Sie die Anfrage und versuchen Sie es noch einmal.
problem-internal-title = Bei uns ist etwas schiefgegangen
problem-internal-detail = Der Fehler wurde protokolliert; versuchen Sie es gleich noch einmal.
problem-unavailable-title = Vorübergehend nicht erreichbar
problem-unavailable-detail = Der Dienst erreicht seinen Speicher gerade nicht. Es wurde nichts geändert; versuchen Sie es in ein paar Sekunden noch einmal.

## Eine eingegebene Adresse wird abgelehnt

invalid-email-empty = Geben Sie Ihre E-Mail-Adresse ein.
invalid-email-too-long = Diese Adresse ist zu lang.
invalid-email-forbidden-character = Eine E-Mail-Adresse darf keine Leer- oder Steuerzeichen enthalten.
invalid-email-not-one-address = Geben Sie eine einzelne Adresse ein, etwa name@example.com.
invalid-email-local-part = Der Teil vor dem @ ist ungültig.
invalid-email-domain = Der Teil nach dem @ muss eine Domain sein, etwa example.com.
invalid-email-encoded-word = Das ist eine codierte Adresse (=?...?=); geben Sie die Adresse selbst ein.
invalid-email-non-ascii-local-part = Der Teil vor dem @ darf hier nur einfache Buchstaben, Ziffern und . _ + - enthalten.

## Ein eingegebener Code meldet niemanden an

code-wrong-last = Dieser Code stimmt nicht, und das war der letzte Versuch: Dieser Code funktioniert nicht mehr. Öffnen Sie den Link in der E-Mail, oder fordern Sie einen neuen an.
code-wrong = Dieser Code stimmt nicht. Sie können es noch { $attempts ->
    [one] { $attempts } Mal
   *[other] { $attempts } Mal
} versuchen.
code-exhausted = Zu viele falsche Codes: Dieser Code funktioniert nicht mehr. Öffnen Sie den Link in der E-Mail, oder fordern Sie einen neuen an.
code-expired = Dieser Code ist abgelaufen, zusammen mit seinem Link. Fordern Sie einen neuen Link an, und verwenden Sie den Code oder Link aus jener E-Mail.
code-used = Dieser Code wurde bereits verwendet. Fordern Sie einen neuen Link an, um sich erneut anzumelden.
code-replaced = Dieser Code gehört zu einem Link, den ein neuerer ersetzt hat. Verwenden Sie den Code aus der neuesten E-Mail.
code-invalid = Dieser Code funktioniert nicht mehr. Fordern Sie einen neuen Link an.
code-malformed = Ein Code hat acht Buchstaben und Ziffern, etwa ABCD-1234.
code-not-this-browser = Ein Code funktioniert nur in dem Browser, in dem Sie den Link angefordert haben. Öffnen Sie stattdessen den Link in der E-Mail, oder fordern Sie hier einen neuen an.

## Ratenbegrenzung

limit-links-to-address = Zu viele Anmelde-E-Mails an diese Adresse.
limit-requests-from-client = Zu viele Anmeldeanfragen aus Ihrem Netzwerk.
limit-links-to-everyone = Wir senden gerade zu viele Anmelde-E-Mails.
limit-failed-sign-ins = Zu viele fehlgeschlagene Anmeldeversuche aus Ihrem Netzwerk.
limit-try-again = Versuchen Sie es in { $unit ->
    [second] { $count ->
        [one] { $count } Sekunde
       *[other] { $count } Sekunden
    }
    [minute] { $count ->
        [one] { $count } Minute
       *[other] { $count } Minuten
    }
   *[hour] { $count ->
        [one] { $count } Stunde
       *[other] { $count } Stunden
    }
} erneut.

## Anzeigenamen

name-too-long = Ein Anzeigename hat höchstens { $max } Zeichen.
name-control-character = Ein Anzeigename darf keine Zeilenumbrüche oder anderen Steuerzeichen enthalten.

## Passwörter (password.enabled)

password-sign-in-heading = Oder mit Ihrem Passwort anmelden
password-label = Passwort
password-sign-in-button = Mit Passwort anmelden
password-forgot = Passwort vergessen? Fordern Sie oben einen Anmeldelink an; danach können Sie auf Ihrer Kontoseite ein neues festlegen.
password-rejected = E-Mail-Adresse oder Passwort falsch.
password-too-short = Ein Passwort braucht mindestens { $min } Zeichen. Mehrere unzusammenhängende Wörter ergeben ein langes, das man sich leicht merkt.
password-too-long = Ein Passwort hat höchstens { $max } Zeichen.
password-control-character = Ein Passwort darf keine Zeilenumbrüche, Tabulatoren oder andere Steuerzeichen enthalten.
password-contains-address = Ein Passwort darf Ihre E-Mail-Adresse nicht enthalten.
password-common = Dieses Passwort ist zu verbreitet: Angreifer probieren es als eines der ersten. Wählen Sie etwas weniger Vorhersehbares, etwa mehrere unzusammenhängende Wörter.
account-password-heading = Passwort
account-password-none = Sie haben kein Passwort: Sie melden sich mit Links per E-Mail an. Sie können eines hinzufügen.
account-password-set = Sie haben ein Passwort. Links per E-Mail funktionieren ebenfalls.
account-password-new-label = Neues Passwort
account-password-hint = Mindestens { $min } Zeichen. Beliebige Zeichen, auch Leerzeichen; mehrere unzusammenhängende Wörter ergeben ein starkes.
account-password-sign-out-others = Mich überall sonst abmelden
account-password-button = Passwort speichern
account-done-password = Ihr Passwort wurde gespeichert.
account-done-password-others = Ihr Passwort wurde gespeichert, und Sie wurden überall sonst abgemeldet.
account-done-confirmed = Danke. Sie können jetzt Ihre Anmeldeadresse oder Ihr Passwort ändern.
account-reauth-heading = Bestätigen Sie, dass Sie es sind
account-reauth-explainer = Um Ihre Anmeldeadresse oder Ihr Passwort zu ändern, müssen Sie sich innerhalb der letzten { $duration } angemeldet haben. Bestätigen Sie zuerst, dass Sie es sind.
account-reauth-password-label = Ihr aktuelles Passwort
account-reauth-password-button = Mit Passwort bestätigen
account-reauth-link-button = Anmeldelink per E-Mail senden
account-reauth-wrong = Dieses Passwort stimmt nicht.
account-address-not-allowed = Adressen dieser Domain können sich hier nicht anmelden.
limit-failed-passwords = Zu viele fehlgeschlagene Anmeldungen mit Passwort. Mit einem Link per E-Mail können Sie sich weiterhin anmelden.
problem-password-rejected-title = E-Mail-Adresse oder Passwort falsch
problem-password-rejected-detail = Prüfen Sie beides und versuchen Sie es erneut, oder melden Sie sich mit einem Link per E-Mail an.
problem-passwords-disabled-title = Passwörter sind nicht aktiviert
problem-passwords-disabled-detail = Dieser Dienst meldet Personen nur mit Links per E-Mail an.
problem-password-refused-title = Dieses Passwort ist nicht möglich
problem-reauthentication-required-title = Bestätigen Sie zuerst, dass Sie es sind
problem-reauthentication-required-detail = Diese Änderung braucht eine kürzliche Anmeldung. Bestätigen Sie mit Ihrem Passwort (POST {base}/reauthenticate) oder melden Sie sich erneut mit einem Link an, dann versuchen Sie es noch einmal.
problem-address-not-allowed-title = Diese Adresse kann sich hier nicht anmelden
problem-address-not-allowed-detail = Nur Adressen der Domains, die dieser Dienst erlaubt, sind möglich.

## Passkeys
passkey-sign-in-button = Mit einem Passkey anmelden
passkey-failed = Dieser Passkey hat Sie nicht angemeldet. Nutzen Sie stattdessen den Link per E-Mail, oder versuchen Sie es erneut.
passkey-cancelled = Es wurde kein Passkey verwendet. Versuchen Sie es erneut, oder fordern Sie einen Link per E-Mail an.
passkey-limited = Zu viele fehlgeschlagene Passkey-Anmeldungen von hier. Nutzen Sie stattdessen den Link per E-Mail.
passkey-reauth = Um einen Passkey hinzuzufügen oder zu löschen, melden Sie sich zuerst erneut an (ein neuer Link oder Ihr Passwort).
passkey-offer = Beim nächsten Mal schneller anmelden: Fügen Sie einen Passkey hinzu.
passkey-offer-dismiss = Nicht jetzt
passkey-heading = Passkeys
passkey-explainer = Ein Passkey meldet Sie mit Fingerabdruck, Gesicht, Bildschirmsperre oder Sicherheitsschlüssel an, ohne E-Mail. Ihr Link per E-Mail funktioniert weiterhin.
passkey-name-label = Name
passkey-rename-button = Namen speichern
passkey-delete-button = Löschen
passkey-add-button = Passkey hinzufügen
passkey-add-needs-recent = Um einen Passkey hinzuzufügen, bestätigen Sie zuerst, dass Sie es sind (siehe oben).
passkey-added = Hinzugefügt
passkey-last-used = zuletzt verwendet
passkey-never-used = nie
passkey-synced = synchronisiert
limit-passkey-ceremonies = Aus Ihrem Netzwerk wurden zu viele Passkey-Anmeldungen begonnen.
limit-failed-passkeys = Zu viele fehlgeschlagene Passkey-Anmeldungen von hier.
problem-passkeys-disabled-title = Passkeys sind nicht aktiviert
problem-passkeys-disabled-detail = Dieser Dienst meldet Personen nicht mit Passkeys an.
problem-passkey-ceremony-expired-title = Die Passkey-Anfrage ist abgelaufen
problem-passkey-ceremony-expired-detail = In diesem Browser wurde keine Passkey-Anfrage gestartet, oder sie ist abgelaufen oder wurde schon beantwortet. Beginnen Sie erneut.
problem-passkey-malformed-title = Keine Passkey-Antwort
problem-passkey-malformed-detail = Die Antwort ist kein WebAuthn-Credential.
problem-passkey-refused-title = Der Passkey hat Sie nicht angemeldet
problem-passkey-refused-detail = Die Antwort des Passkeys passt nicht zu dieser Website. Niemand wurde angemeldet; der Link per E-Mail funktioniert weiterhin.
problem-passkey-unknown-title = Unbekannter Passkey
problem-passkey-unknown-detail = Dieser Passkey ist hier nicht registriert (vielleicht wurde er gelöscht). Melden Sie sich mit dem Link per E-Mail an.
problem-passkey-counter-regressed-title = Der Passkey wurde womöglich kopiert
problem-passkey-counter-regressed-detail = Der Signaturzähler des Authentifikators ist zurückgegangen, wie es bei einem geklonten Schlüssel geschähe. Niemand wurde angemeldet; nutzen Sie den Link per E-Mail.
problem-passkey-already-registered-title = Passkey bereits hinzugefügt
problem-passkey-already-registered-detail = Der Passkey dieses Authentifikators ist bereits registriert.
problem-passkey-registration-refused-title = Der Passkey wurde nicht hinzugefügt
problem-passkey-registration-refused-detail = Die Antwort des Authentifikators passt nicht zu dieser Website.
problem-passkey-name-invalid-title = Kein gültiger Passkey-Name
problem-passkey-name-invalid-detail = Ein Passkey-Name hat 1 bis 64 Zeichen und keine Zeilenumbrüche oder Steuerzeichen.
problem-no-such-passkey-title = Kein solcher Passkey
problem-no-such-passkey-detail = Sie haben keinen Passkey mit dieser ID.

# The OpenID Provider: the consent page, an app's sign-out, and its refusals.
consent-title = { $app } möchte Sie anmelden
consent-heading = Bei { $app } anmelden?
consent-signed-in-as = Sie sind angemeldet als
consent-wants = { $app } erhält:
consent-wants-nothing = { $app } erfährt nur, dass Sie es sind (eine Kennung, die sich nie ändert, nicht Ihre Adresse).
consent-scope-email = Ihre E-Mail-Adresse
consent-scope-profile = Ihren Namen
consent-scope-offline = Zugriff, während Sie nicht da sind, bis Sie ihn widerrufen
consent-approve = Erlauben
consent-deny = Ablehnen
consent-revocable = Sie können das jederzeit auf Ihrer Kontoseite unter „Apps, bei denen Sie sich angemeldet haben“ widerrufen.
oidc-logout-question = Eine App möchte Sie in diesem Browser von { $site } abmelden. Abmelden?
problem-oidc-unknown-client-title = Unbekannte App
problem-oidc-unknown-client-detail = Die App, die Sie hierher geschickt hat, ist bei diesem Anmeldedienst nicht registriert. Gehen Sie zurück zur App und versuchen Sie es erneut, oder wenden Sie sich an ihre Administration.
problem-oidc-redirect-uri-title = Die Rücksprungadresse dieser App ist nicht registriert
problem-oidc-redirect-uri-detail = Zu Ihrer Sicherheit wurden Sie nicht weitergeleitet: Die Adresse, zu der die App zurück wollte, hat sie nicht registriert. Wenden Sie sich an die Administration der App.
problem-oidc-logout-hint-title = Diese Abmeldeanfrage ist ungültig
problem-oidc-logout-hint-detail = Die Abmeldeanfrage der App enthielt ein Token, das dieser Dienst nicht ausgestellt hat. Es wurde nichts geändert.
problem-oauth-title = OAuth-Anfrage abgelehnt
problem-oauth-detail = Der Fehlercode nennt den Grund.
problem-no-such-app-title = Keine solche App
problem-no-such-app-detail = Sie haben sich bei dieser App nicht angemeldet, oder ihr Zugriff wurde bereits widerrufen.
account-apps-heading = Apps, bei denen Sie sich angemeldet haben
account-apps-since = Erlaubt
account-apps-only-you = nur, dass Sie es sind
account-apps-revoke = Zugriff entfernen
account-apps-note = Wenn Sie einer App den Zugriff entziehen, funktionieren ihre Tokens nicht mehr; beim nächsten Anmelden fragt sie erneut.
account-done-app-revoked = Diese App hat keinen Zugriff mehr.

# Die Kontoseite: „Letzte Sicherheitsaktivität“ (das Audit-Protokoll, nur die eigenen Ereignisse).
activity-heading = Letzte Sicherheitsaktivität
activity-what = Was geschah
activity-place = Netz
activity-when = Wann
activity-refused = (abgelehnt)
activity-older = Ältere Aktivität
activity-none = Noch nichts.
activity-note = Das Netz ist, woher Sie kamen, so wie wir es aufbewahren (üblicherweise das Netz Ihrer Adresse, nicht die Adresse selbst): genug, um Orte zu unterscheiden. Wenn Sie etwas hier nicht wiedererkennen, melden Sie Ihre anderen Sitzungen ab und sagen Sie uns Bescheid.
activity-link-requested = Anmeldelink angefordert
activity-link-redeemed = Mit einem Link angemeldet
activity-code-redeemed = Mit einem Code angemeldet
activity-password-sign-in = Mit einem Passwort angemeldet
activity-passkey-sign-in = Mit einem Passkey angemeldet
activity-signed-out = Abgemeldet
activity-session-revoked = Sitzung beendet
activity-address-change-requested = Adressänderung angefordert
activity-address-changed = Anmeldeadresse geändert
activity-password-set = Passwort gesetzt
activity-passkey-added = Passkey hinzugefügt
activity-passkey-removed = Passkey entfernt
activity-user-created = Konto angelegt
activity-user-disabled = Konto gesperrt
activity-user-enabled = Konto wieder freigegeben
activity-user-deleted = Konto gelöscht
activity-operator-command = Von einem Administrator geändert
activity-this-session = (in dieser Sitzung)

# Sicherheitshinweise (alerts.*): je einer pro Änderung, mit Link zur Kontoseite und was zu tun ist, wenn Sie es nicht waren.
alert-new-sign-in-subject = Neue Anmeldung bei { $site } mit { $device }
alert-new-sign-in-heading = Eine neue Anmeldung bei Ihrem Konto
alert-new-sign-in-text = Jemand hat sich bei Ihrem Konto bei { $site } ({ $to }) mit { $device } angemeldet, einem Browser, der dafür noch nicht verwendet wurde.
alert-password-subject = Ihr Passwort bei { $site } wurde geändert
alert-password-heading = Ihr Passwort wurde geändert
alert-password-text = Das Passwort Ihres Kontos bei { $site } ({ $to }) wurde gesetzt oder geändert.
alert-passkey-subject = Ihrem Konto bei { $site } wurde ein Passkey hinzugefügt
alert-passkey-heading = Ein Passkey wurde hinzugefügt
alert-passkey-text = Ihrem Konto bei { $site } ({ $to }) wurde ein Passkey namens „{ $name }“ hinzugefügt.
alert-review-button = Konto überprüfen
alert-not-me = Wenn Sie das waren, ist nichts zu tun. Wenn nicht: Öffnen Sie Ihre Kontoseite, melden Sie Ihre anderen Sitzungen ab, entfernen Sie, was Sie nicht kennen, und sagen Sie den Betreibern von { $site } Bescheid.
alert-deleted-subject = Ihr Konto bei { $site } wurde gelöscht
alert-deleted-heading = Ihr Konto wurde gelöscht
alert-deleted-text = Ihr Konto bei { $site } ({ $to }) wurde wie gewünscht gelöscht, mit allem, was dazu gespeichert war: Sitzungen, Passkeys, Passwort und die Apps, denen Sie Zugriff gegeben hatten. Auf Wiedersehen.
alert-home-button = Zu { $site }
alert-deleted-not-me = Wenn Sie das nicht veranlasst haben, war jemand als Sie angemeldet: Sagen Sie den Betreibern von { $site } sofort Bescheid. Sie können mit derselben Adresse ein neues Konto anlegen.

# Daten herunterladen und Konto löschen (die Kontoseite).
account-data-heading = Ihre Daten
account-export-text = Alles, was über Sie gespeichert ist, Ihre Aktivität eingeschlossen, als eine JSON-Datei.
account-export-button = Meine Daten herunterladen
account-delete-text = Wenn Sie Ihr Konto löschen, wird es mit allem entfernt, was dazu gespeichert ist: Sitzungen, Passkeys, Passwort und die Apps, denen Sie Zugriff gegeben haben. Das lässt sich nicht rückgängig machen; später können Sie mit derselben Adresse ein neues Konto anlegen.
account-delete-label = Geben Sie zur Bestätigung Ihre Anmeldeadresse ein
account-delete-button = Mein Konto löschen
account-delete-mismatch = Das ist nicht Ihre Anmeldeadresse; nichts wurde gelöscht.
account-data-needs-recent = Bestätigen Sie oben, dass Sie es sind, um Ihre Daten herunterzuladen oder Ihr Konto zu löschen.
problem-confirmation-mismatch-title = Die zur Bestätigung eingegebene Adresse ist nicht die des Kontos
problem-confirmation-mismatch-detail = Senden Sie die Anmeldeadresse des Kontos als `confirmEmail`, um es zu löschen; nichts wurde gelöscht.
home-account-deleted = Ihr Konto wurde gelöscht. Wir haben Ihnen eine letzte E-Mail zur Bestätigung geschickt.
