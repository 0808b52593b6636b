package chat

import (
	"errors"
	"strings"
	"time"

	"github.com/nikolalohinski/gonja/v2/builtins"
	"github.com/nikolalohinski/gonja/v2/config"
	"github.com/nikolalohinski/gonja/v2/exec"
	"github.com/nikolalohinski/gonja/v2/nodes"
	"github.com/nikolalohinski/gonja/v2/parser"
	"github.com/nikolalohinski/gonja/v2/tokens"
)

// Why gonja: it is the Go Jinja2 implementation that supports trim_blocks and
// lstrip_blocks, which transformers turns on for every chat template
// (ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
// extensions=[loopcontrols])). Templates written with plain "{% ... %}" tags
// on their own lines (Zephyr's, many fine-tunes') render differently without
// them. It also has the Python string methods (.strip(), .split(),
// .startswith()), slicing ([::-1]), namespace() and loop controls the
// templates of Llama 3, Qwen 3 and Mistral use. chat_test.go compares its
// output with Python's jinja2 configured as transformers does.

// hfConfig is transformers' Jinja configuration.
func hfConfig() *config.Config {
	c := config.New()
	c.TrimBlocks = true
	c.LeftStripBlocks = true
	c.KeepTrailingNewline = false // jinja2's default, kept by transformers
	c.StrictUndefined = false     // jinja2's default Undefined: prints as ""
	return c
}

// environment is gonja's default environment with transformers' additions.
// It is built from copies so that gonja's package-level defaults stay
// untouched for any other user of the library in the process.
var environment = newEnvironment()

func newEnvironment() *exec.Environment {
	ctx := exec.EmptyContext().Update(builtins.GlobalFunctions).Update(builtins.GlobalVariables)
	ctx.Set("raise_exception", raiseException)
	ctx.Set("strftime_now", strftimeNow)

	filters := exec.NewFilterSet(map[string]exec.FilterFunction{}).Update(builtins.Filters)
	if err := filters.Replace("tojson", filterToJSON); err != nil {
		panic(err) // gonja always has tojson; a build without it is a bug here
	}

	controls := exec.NewControlStructureSet(map[string]parser.ControlStructureParser{}).Update(builtins.ControlStructures)
	if err := controls.Register("generation", generationParser); err != nil {
		panic(err)
	}
	return &exec.Environment{
		Context:           ctx,
		Filters:           filters,
		Tests:             builtins.Tests,
		ControlStructures: controls,
		Methods:           builtins.Methods,
	}
}

// raisePrefix marks the errors of raise_exception inside gonja's wrapped
// error chain, so that Render can report the template's own message.
const raisePrefix = "\x00raise_exception\x00"

// raiseException is transformers' raise_exception(message): the template
// refuses the conversation (e.g. roles that do not alternate).
func raiseException(args *exec.VarArgs) (any, error) {
	msg := "raise_exception called"
	if len(args.Args) > 0 {
		msg = args.Args[0].String()
	}
	return nil, errors.New(raisePrefix + msg)
}

// strftimeNow is transformers' strftime_now(format): the current local time
// formatted with Python's strftime directives (Llama 3.1's template prints
// "Today Date: {{ strftime_now('%d %b %Y') }}").
func strftimeNow(args *exec.VarArgs) (string, error) {
	if len(args.Args) != 1 || !args.Args[0].IsString() {
		return "", errors.New("strftime_now takes one format string")
	}
	return strftime(time.Now(), args.Args[0].String()), nil
}

// strftime formats t with the C/Python strftime directives chat templates
// use; an unknown directive is copied as is, as glibc does.
func strftime(t time.Time, format string) string {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' || i+1 == len(format) {
			b.WriteByte(c)
			continue
		}
		i++
		switch format[i] {
		case 'Y':
			b.WriteString(t.Format("2006"))
		case 'y':
			b.WriteString(t.Format("06"))
		case 'm':
			b.WriteString(t.Format("01"))
		case 'd':
			b.WriteString(t.Format("02"))
		case 'e':
			b.WriteString(t.Format("_2"))
		case 'H':
			b.WriteString(t.Format("15"))
		case 'I':
			b.WriteString(t.Format("03"))
		case 'M':
			b.WriteString(t.Format("04"))
		case 'S':
			b.WriteString(t.Format("05"))
		case 'p':
			b.WriteString(t.Format("PM"))
		case 'b', 'h':
			b.WriteString(t.Format("Jan"))
		case 'B':
			b.WriteString(t.Format("January"))
		case 'a':
			b.WriteString(t.Format("Mon"))
		case 'A':
			b.WriteString(t.Format("Monday"))
		case 'j':
			b.WriteString(t.Format("002"))
		case 'Z':
			b.WriteString(t.Format("MST"))
		case 'z':
			b.WriteString(t.Format("-0700"))
		case 'F':
			b.WriteString(t.Format("2006-01-02"))
		case 'T':
			b.WriteString(t.Format("15:04:05"))
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			b.WriteByte(format[i])
		}
	}
	return b.String()
}

// generationControl is transformers' {% generation %}…{% endgeneration %}
// (the AssistantTracker extension): it marks the assistant's part of the
// text for return_assistant_tokens_mask and renders its body unchanged.
// Rendering it as a plain block lets such templates (TRL's patched ones)
// work here; the data package finds assistant spans on its own.
type generationControl struct {
	location *tokens.Token
	wrapper  *nodes.Wrapper
}

func (g *generationControl) Position() *tokens.Token { return g.location }

func (g *generationControl) String() string { return "GenerationControlStructure" }

func (g *generationControl) Execute(r *exec.Renderer, _ *nodes.ControlStructureBlock) error {
	// Like an if-body: assignments inside reach the enclosing scope, as in
	// Jinja, where {% generation %} opens no scope of its own.
	return r.ExecuteIfWrapper(g.wrapper)
}

func generationParser(p *parser.Parser, args *parser.Parser) (nodes.ControlStructure, error) {
	location := p.Current()
	wrapper, endargs, err := p.WrapUntil("endgeneration")
	if err != nil {
		return nil, err
	}
	if !args.End() {
		return nil, args.Error("generation takes no arguments", nil)
	}
	if !endargs.End() {
		return nil, endargs.Error("endgeneration takes no arguments", nil)
	}
	return &generationControl{location: location, wrapper: wrapper}, nil
}
