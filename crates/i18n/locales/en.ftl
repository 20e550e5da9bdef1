# magiclink's pages and emails in English: the default language, and the fallback for any
# message another language lacks. Ids are grouped by page or email; `$site` is the site name.
# To change a sentence, put the message (id and new text) in {templates.dir}/locales/en.ftl.

## Shared

# A length of time: `$unit` is second, minute, hour or day; `$count` how many, already rounded.
duration = { $unit ->
    [second] { $count ->
        [one] { $count } second
       *[other] { $count } seconds
    }
    [minute] { $count ->
        [one] { $count } minute
       *[other] { $count } minutes
    }
    [hour] { $count ->
        [one] { $count } hour
       *[other] { $count } hours
    }
   *[day] { $count ->
        [one] { $count } day
       *[other] { $count } days
    }
}
email-label = Email address
sign-out-button = Sign out
sign-in-with-email-link = Sign in with your email
not-signed-in = You are not signed in.
home-link = Home
sign-in-link = Sign in

## Home page

home-signed-in-as = Signed in as
home-account-link = Your account

## Sign-in page

sign-in-title = Sign in
sign-in-heading = Sign in to { $site }
sign-in-button = Email me a sign-in link
sign-in-explainer = No password needed: we email you a link that signs you in. It works once and expires in { $duration }.

## "Check your email"

check-email-title = Check your email
check-email-sent-before = We sent a sign-in link to
check-email-your-address = your address
check-email-sent-after = .
check-email-expires = It expires in { $duration }.
check-email-help-before = Open the link on this device to sign in here. Didn't get it? Check your spam folder, or
check-email-help-link = ask for a new link
check-email-link-expired = The link and code we sent to
check-email-link-expired-after = { "" } have expired.
check-email-code-label = Reading the email on another device? Enter the code from it:
check-email-code-button = Sign in with the code

## Sign-out page

sign-out-title = Sign out
sign-out-signed-in-as = You are signed in as
sign-out-question = Sign out of { $site } in this browser?

## "Sign in on this device?" (a link opened in another browser)

confirm-title = Sign in?
confirm-heading = Sign in as { $masked } on this device?
confirm-other-account-before = This browser is signed in as
confirm-other-account-after = . Continuing signs you out of that account and in as
confirm-same-account = This browser is already signed in as
confirm-explainer = Nothing happens until you press the button: this browser is not waiting for this link (it was asked for in another browser, or this browser has asked for another link since). Mail scanners open links too; this keeps them from using yours up.
confirm-button = Sign in on this device
confirm-not-me = Didn't ask to sign in? Close this page: nothing has changed.

## "You are already signed in" (opening an old link of the person signed in)

signed-in-already-title = You are already signed in
signed-in-already-as = This browser is signed in as
signed-in-already-used = The link you opened was used already; you don't need it any more.
signed-in-already-replaced = The link you opened was replaced by a newer one; you don't need it any more.
signed-in-already-expired = The link you opened has expired; you don't need it any more.
signed-in-already-continue = Continue

## Sign-in problems (the error page)

auth-error-title = Sign-in problem
auth-error-used-heading = This link was already used
auth-error-used-text = Each sign-in link works once. If that was you, you are signed in in that browser.
auth-error-used-new-link = Get a new link
auth-error-used-new-link-after = to sign in here.
auth-error-replaced-heading = This link was replaced by a newer one
auth-error-replaced-text = A newer sign-in link was sent to the same address after this one, so only the newer link works. Open the most recent email, or
auth-error-expired-heading = This link has expired
auth-error-expired-text = Sign-in links work for { $duration }. Request a new one:
auth-error-expired-button = Email me a new link
auth-error-invalid-heading = This link is not valid
auth-error-invalid-text = It may have been copied incompletely: open it from the email as it is, or
auth-error-invalid-link = request a new link
auth-error-dev-restart = In development: the service was restarted with a generated secret (no AUTH_SECRET set), and links sent before a restart no longer work.
auth-error-other-text = Something went wrong while signing you in.
auth-error-try-again = Try again

## "This form has expired" (CSRF)

csrf-error-title = Please reload
csrf-error-heading = This form has expired
csrf-error-text = For your security the form could not be accepted: it was opened in another session or has gone stale. Reload the page and try again.
csrf-error-back = Back to sign in

## Account page

account-title = Your account
account-signs-in-as = You sign in as
account-change-email-label = Change your sign-in address
account-change-email-button = Email a confirmation link
account-name-label = Your name
account-name-button = Save
account-sessions-heading = Where you are signed in
account-sessions-device = Device
account-sessions-created = Signed in since
account-sessions-last-used = Last used
account-sessions-this-device = (this device)
account-sessions-last-used-note = "Last used" is updated at most once a day.
account-sessions-absolute-note = A session ends { $duration } after its sign-in however much it is used; then sign in again with a link.
account-revoke-others = Sign out everywhere else
account-done-renamed = Your name was saved.
account-done-revoked = That session was signed out.
account-done-others = Every other session was signed out.
account-done-confirm-sent = We emailed a link to the new address. Your sign-in address changes when you open it.
account-done-email-changed = Your sign-in address was changed.
account-same-address = That is already your sign-in address.

## Confirming a new sign-in address

confirm-email-title = Change your sign-in address?
confirm-email-heading = Sign in with { $email } from now on?
confirm-email-text = You asked to change the address your account signs in with. Nothing changes until you press the button; your old address will be told.
confirm-email-button = Use { $email }
confirm-email-not-me = Didn't ask for this? Close this page: nothing has changed.

## Email: the sign-in link

email-sign-in-subject = Sign in to { $site }
email-sign-in-heading = Sign in to { $site }
email-sign-in-intro = Open this link to sign in as { $to }
email-sign-in-button = Sign in
email-paste-link = Or paste this link into your browser:
email-sign-in-code = Reading this on another device? On the device where you asked for the link, enter this code:
email-link-once = The link works once and expires in { $duration }. It points at { $host }.
email-sign-in-ignore = If you did not ask to sign in, you can ignore this email: nobody can sign in without the link.

## Email: confirm a new sign-in address (to the new address)

email-confirm-subject = Confirm your new sign-in address for { $site }
email-confirm-heading = Confirm your new sign-in address
email-confirm-intro = Someone signed in to an existing { $site } account asked to add { $to } to that account as its sign-in address. If that was you, open this link in the browser where you are signed in to that account to confirm
email-confirm-button = Confirm
email-confirm-ignore = If you did not ask for this, do not open the link: confirming would let that other account sign in with your address. Ignore this email; nothing changes without it.

## Email: the sign-in address was changed (to the old address)

email-changed-subject = Your { $site } sign-in address was changed
email-changed-heading = Your sign-in address was changed
email-changed-text = Your { $site } account no longer signs in with { $to }. It signs in with { $new_address } now.
email-changed-not-me = If you did not make this change, contact the people who run { $site } at once.

## Problems: the titles and details of error pages and of the JSON API's problem documents
## (which are always in English).

problem-csrf-title = CSRF token missing or invalid
problem-csrf-detail = Fetch a token from GET { "{base}" }/csrf and send it back with its cookie: as csrfToken in a form or JSON body, or in the X-CSRF-Token header.
problem-bad-form-title = The request body is not a readable form
problem-bad-form-detail = Send the fields as an application/x-www-form-urlencoded body.
problem-bad-json-title = The request body is not acceptable JSON
problem-bad-json-detail = Send one JSON object in which each key appears once.
problem-bad-query-title = A query parameter is not acceptable
problem-as-is = { $text }
problem-invalid-email-title = Invalid email address
problem-not-found-title = Page not found
problem-not-found-detail = There is nothing at this address.
problem-signed-out-title = Not signed in
problem-signed-out-detail = Sign in first: this needs the session cookie of a live session.
problem-no-such-session-title = No such session
problem-no-such-session-detail = You have no session with this id: it may have ended already.
problem-method-not-allowed-title = Method not allowed
problem-method-not-allowed-detail = This address exists, but not for this kind of request.
problem-code-title = The code did not sign you in
problem-link-invalid-title = This sign-in link is not valid
problem-link-invalid-detail = It may have been copied incompletely or changed. Ask for a new one.
problem-link-used-title = This sign-in link was used already
problem-link-used-detail = A link signs in once. Ask for a new one.
problem-link-replaced-title = This sign-in link was replaced by a newer one
problem-link-replaced-detail = A newer link was sent to the same address; only that one works. Use the most recent email.
problem-link-expired-title = This sign-in link has expired
problem-link-expired-detail = Links last a few minutes. Ask for a new one.
problem-address-change-invalid-title = This confirmation link is not valid
problem-address-change-invalid-detail = It may have been copied incompletely, or replaced by a newer request. Use the most recent email.
problem-address-change-used-title = This confirmation link was used already
problem-address-change-used-detail = A confirmation link works once; if it was you, the address has changed.
problem-address-change-expired-title = This confirmation link has expired
problem-address-change-expired-detail = Ask for the change again on your account page.
problem-address-taken-title = That address belongs to another account
problem-address-taken-detail = Another account signs in with this address now, so nothing changed.
problem-address-change-not-requester-title = Sign in to the account that asked for this change
problem-address-change-not-requester-detail = Only the account that asked to use this address can confirm it, in a browser where you are signed in to it. If you did not ask for this, do not confirm: close this page and ignore the email. Nothing has changed.
problem-same-address-title = That is already your sign-in address
problem-same-address-detail = Type the new address you want to sign in with.
problem-rate-limited-title = Too many requests
problem-payload-too-large-title = Request too large
problem-payload-too-large-detail = A request body may hold at most { $limit } bytes; a sign-in form needs a few hundred.
problem-length-required-title = Length required
problem-length-required-detail = Send the body with a Content-Length header.
problem-request-timeout-title = Request timed out
problem-request-timeout-detail = The request took too long to arrive. Try again.
problem-refused-title = The request could not be read
problem-refused-detail = Check the request and try again.
problem-internal-title = Something went wrong on our side
problem-internal-detail = The error was logged; try again in a moment.
problem-unavailable-title = Temporarily unavailable
problem-unavailable-detail = The service cannot reach its storage right now. Nothing was changed; try again in a few seconds.

## A typed address that is refused

invalid-email-empty = Enter your email address.
invalid-email-too-long = That address is too long.
invalid-email-forbidden-character = An email address cannot contain spaces or control characters.
invalid-email-not-one-address = Enter a single address, like name@example.com.
invalid-email-local-part = The part before the @ is not valid.
invalid-email-domain = The part after the @ must be a domain, like example.com.
invalid-email-encoded-word = That is an encoded address (=?...?=); type the address itself.
invalid-email-non-ascii-local-part = The part before the @ may use only plain letters, digits and . _ + - here.

## A typed code that signs nobody in

code-wrong-last = That code is not right, and it was the last try: this code no longer works. Open the link in the email, or ask for a new one.
code-wrong = That code is not right. You can try { $attempts } more { $attempts ->
    [one] time
   *[other] times
}.
code-exhausted = Too many wrong codes: this code no longer works. Open the link in the email, or ask for a new one.
code-expired = This code has expired, with the link it came with. Ask for a new link, and use the code or link from that email.
code-used = This code was already used. Ask for a new link to sign in again.
code-replaced = This code belongs to a link that a newer one replaced. Use the code from the most recent email.
code-invalid = This code no longer works. Ask for a new link.
code-malformed = A code has eight letters and digits, like ABCD-1234.
code-not-this-browser = A code works only in the browser where you asked for the link. Open the link in the email instead, or ask for a new one here.

## Rate limits

limit-links-to-address = Too many sign-in emails for this address.
limit-requests-from-client = Too many sign-in requests from your network.
limit-links-to-everyone = We are sending too many sign-in emails right now.
limit-failed-sign-ins = Too many failed sign-in attempts from your network.
limit-try-again = Try again in { $unit ->
    [second] { $count ->
        [one] { $count } second
       *[other] { $count } seconds
    }
    [minute] { $count ->
        [one] { $count } minute
       *[other] { $count } minutes
    }
   *[hour] { $count ->
        [one] { $count } hour
       *[other] { $count } hours
    }
}.

## Display names

name-too-long = A display name has at most { $max } characters.
name-control-character = A display name cannot hold line breaks or other control characters.

## Passwords (password.enabled)

password-sign-in-heading = Or sign in with your password
password-label = Password
password-sign-in-button = Sign in with password
password-forgot = Forgot your password? Ask for a sign-in link above; once signed in, you can set a new one on your account page.
password-rejected = Wrong email address or password.
password-too-short = A password needs at least { $min } characters. Several unrelated words make a long one that is easy to remember.
password-too-long = A password has at most { $max } characters.
password-control-character = A password cannot hold line breaks, tabs or other control characters.
password-contains-address = A password cannot contain your email address.
password-common = That password is too common: it is among the first an attacker would try. Pick something less predictable, such as several unrelated words.
account-password-heading = Password
account-password-none = You have no password: you sign in with emailed links. You can add one.
account-password-set = You have a password. Emailed links work too.
account-password-new-label = New password
account-password-hint = At least { $min } characters. Any characters, spaces too; several unrelated words make a strong one.
account-password-sign-out-others = Sign me out everywhere else
account-password-button = Save password
account-done-password = Your password was saved.
account-done-password-others = Your password was saved, and you were signed out everywhere else.
account-done-confirmed = Thank you. You can change your sign-in address or password now.
account-reauth-heading = Confirm it is you
account-reauth-explainer = Changing your sign-in address or password needs a sign-in within the last { $duration }. Confirm it is you first.
account-reauth-password-label = Your current password
account-reauth-password-button = Confirm with password
account-reauth-link-button = Email me a sign-in link
account-reauth-wrong = That password is not right.
account-address-not-allowed = Addresses at that domain cannot sign in here.
limit-failed-passwords = Too many failed password sign-ins. You can still sign in with an emailed link.
problem-password-rejected-title = Wrong email address or password
problem-password-rejected-detail = Check both and try again, or sign in with an emailed link.
problem-passwords-disabled-title = Passwords are not enabled
problem-passwords-disabled-detail = This service signs people in with emailed links only.
problem-password-refused-title = That password cannot be used
problem-reauthentication-required-title = Confirm it is you first
problem-reauthentication-required-detail = This change needs a recent sign-in. Confirm with your password (POST {base}/reauthenticate) or sign in again with a link, then try again.
problem-address-not-allowed-title = That address cannot sign in here
problem-address-not-allowed-detail = Only addresses at the domains this service allows can be used.

## Passkeys
passkey-sign-in-button = Sign in with a passkey
passkey-failed = That passkey did not sign you in. Use the email link instead, or try again.
passkey-cancelled = No passkey was used. You can try again, or get an email link.
passkey-limited = Too many failed passkey sign-ins from here. Use the email link instead.
passkey-reauth = To add or delete a passkey, sign in again first (a fresh link, or your password).
passkey-offer = Sign in faster next time: add a passkey.
passkey-offer-dismiss = Not now
passkey-heading = Passkeys
passkey-explainer = A passkey signs you in with your fingerprint, face, screen lock or security key, with no email. Your email link always works too.
passkey-name-label = Name
passkey-rename-button = Save name
passkey-delete-button = Delete
passkey-add-button = Add a passkey
passkey-add-needs-recent = To add a passkey, confirm it is you first (see above).
passkey-added = Added
passkey-last-used = last used
passkey-never-used = never
passkey-synced = synced
limit-passkey-ceremonies = Too many passkey sign-ins were started from your network.
limit-failed-passkeys = Too many failed passkey sign-ins from here.
problem-passkeys-disabled-title = Passkeys are not enabled
problem-passkeys-disabled-detail = This service does not sign people in with passkeys.
problem-passkey-ceremony-expired-title = The passkey request expired
problem-passkey-ceremony-expired-detail = No passkey request was started in this browser, or it expired or was already answered. Start again.
problem-passkey-malformed-title = Not a passkey response
problem-passkey-malformed-detail = The answer is not a WebAuthn credential.
problem-passkey-refused-title = The passkey did not sign you in
problem-passkey-refused-detail = The passkey's answer does not check out for this site. Nobody was signed in; the email link still works.
problem-passkey-unknown-title = Unknown passkey
problem-passkey-unknown-detail = This passkey is not registered here (it may have been deleted). Sign in with the email link.
problem-passkey-counter-regressed-title = The passkey may have been copied
problem-passkey-counter-regressed-detail = The authenticator's signature counter went backwards, which a cloned key would cause. Nobody was signed in; use the email link.
problem-passkey-already-registered-title = Passkey already added
problem-passkey-already-registered-detail = This authenticator's passkey is registered already.
problem-passkey-registration-refused-title = The passkey was not added
problem-passkey-registration-refused-detail = The authenticator's answer does not check out for this site.
problem-passkey-name-invalid-title = Not a passkey name
problem-passkey-name-invalid-detail = A passkey name has 1 to 64 characters and no line breaks or control characters.
problem-no-such-passkey-title = No such passkey
problem-no-such-passkey-detail = You have no passkey with that id.

# The OpenID Provider: the consent page, an app's sign-out, and its refusals.
consent-title = { $app } asks to sign you in
consent-heading = Sign in to { $app }?
consent-signed-in-as = You are signed in as
consent-wants = { $app } will receive:
consent-wants-nothing = { $app } will learn only that it is you (an id that never changes, not your address).
consent-scope-email = your email address
consent-scope-profile = your name
consent-scope-offline = access while you are away, until you withdraw it
consent-approve = Allow
consent-deny = Deny
consent-revocable = You can withdraw this at any time on your account page, under “Apps you have signed in to”.
oidc-logout-question = An app asks to sign you out of { $site } in this browser. Sign out?
problem-oidc-unknown-client-title = Unknown app
problem-oidc-unknown-client-detail = The app that sent you here is not registered with this sign-in service. Go back to the app and try again, or tell its administrator.
problem-oidc-redirect-uri-title = This app’s return address is not registered
problem-oidc-redirect-uri-detail = For your safety you were not sent on: the address the app asked to return to is not one it registered. Tell the app’s administrator.
problem-oidc-logout-hint-title = This sign-out request is not valid
problem-oidc-logout-hint-detail = The app’s sign-out request carried a token this service did not issue. Nothing was changed.
problem-oauth-title = OAuth request refused
problem-oauth-detail = The error code says why.
problem-no-such-app-title = No such app
problem-no-such-app-detail = You have not signed in to that app, or its access was already withdrawn.
account-apps-heading = Apps you have signed in to
account-apps-since = Allowed
account-apps-only-you = only that it is you
account-apps-revoke = Remove access
account-apps-note = Removing an app's access stops the tokens it holds from working; it asks again the next time you sign in to it.
account-done-app-revoked = That app no longer has access.

# The account page's "Recent security activity" (the audit log, the person's own events).
activity-heading = Recent security activity
activity-what = What happened
activity-place = Network
activity-when = When
activity-refused = (refused)
activity-older = Older activity
activity-none = Nothing yet.
activity-note = The network is where you came from as we keep it (by default, the network of your address, not the address itself): enough to tell places apart. If you do not recognise something here, sign out your other sessions and tell us.
activity-link-requested = Sign-in link asked for
activity-link-redeemed = Signed in with a link
activity-code-redeemed = Signed in with a code
activity-password-sign-in = Signed in with a password
activity-passkey-sign-in = Signed in with a passkey
activity-signed-out = Signed out
activity-session-revoked = Session ended
activity-address-change-requested = Change of address asked for
activity-address-changed = Sign-in address changed
activity-password-set = Password set
activity-passkey-added = Passkey added
activity-passkey-removed = Passkey removed
activity-user-created = Account created
activity-user-disabled = Account disabled
activity-user-enabled = Account enabled again
activity-user-deleted = Account deleted
activity-operator-command = Changed by an administrator
activity-this-session = (in this session)

# Security alerts (alerts.*): each tells of one change, links to the account page, and says what to do if it was not you.
alert-new-sign-in-subject = New sign-in to { $site } from { $device }
alert-new-sign-in-heading = A new sign-in to your account
alert-new-sign-in-text = Someone signed in to your { $site } account ({ $to }) from { $device }, a browser not used on it before.
alert-password-subject = Your { $site } password was changed
alert-password-heading = Your password was changed
alert-password-text = The password of your { $site } account ({ $to }) was set or changed.
alert-passkey-subject = A passkey was added to your { $site } account
alert-passkey-heading = A passkey was added
alert-passkey-text = A passkey named “{ $name }” was added to your { $site } account ({ $to }).
alert-review-button = Review your account
alert-not-me = If this was you, there is nothing to do. If it was not: open your account page, sign out your other sessions, remove what you do not recognise, and tell the people who run { $site }.
alert-deleted-subject = Your { $site } account was deleted
alert-deleted-heading = Your account was deleted
alert-deleted-text = Your { $site } account ({ $to }) was deleted, as you asked, with everything kept about it: sessions, passkeys, password and the apps you let in. Goodbye.
alert-home-button = Go to { $site }
alert-deleted-not-me = If you did not ask for this, someone was signed in as you: tell the people who run { $site } at once. You can make a new account with the same address.

# Downloading your data and deleting your account (the account page).
account-data-heading = Your data
account-export-text = Everything kept about you, your activity included, as one JSON file.
account-export-button = Download my data
account-delete-text = Deleting your account removes it and everything kept about it: sessions, passkeys, password, and the apps you let in. It cannot be undone; you can make a new account with the same address later.
account-delete-label = Type your sign-in address to confirm
account-delete-button = Delete my account
account-delete-mismatch = That is not your sign-in address; nothing was deleted.
account-data-needs-recent = Confirm it is you (above) to download your data or delete your account.
problem-confirmation-mismatch-title = The address typed to confirm is not the account's
problem-confirmation-mismatch-detail = Send the account's sign-in address as `confirmEmail` to delete it; nothing was deleted.
home-account-deleted = Your account was deleted. We sent a last email to confirm it.
