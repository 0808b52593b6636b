package data

import (
	"encoding/json"
	"fmt"
)

// preTokenized is {"input_ids": [...], "labels": [...]}: used as given,
// nothing added (no <bos>, no <eos>); labels default to the input ids, and
// IgnoreIndex marks positions without loss. TrainOnInputs does not apply:
// the labels say what the author wanted.
func preTokenized(o object) (Example, error) {
	var ex Example
	if err := json.Unmarshal(o["input_ids"], &ex.InputIDs); err != nil || ex.InputIDs == nil {
		return ex, fmt.Errorf("field \"input_ids\" must be a list of ints")
	}
	if len(ex.InputIDs) == 0 {
		return ex, fmt.Errorf("field \"input_ids\" is empty")
	}
	if raw, ok := o["labels"]; ok {
		if err := json.Unmarshal(raw, &ex.Labels); err != nil || ex.Labels == nil {
			return ex, fmt.Errorf("field \"labels\" must be a list of ints")
		}
		if len(ex.Labels) != len(ex.InputIDs) {
			return ex, fmt.Errorf("labels has %d entries, input_ids %d", len(ex.Labels), len(ex.InputIDs))
		}
	} else {
		ex.Labels = append([]int(nil), ex.InputIDs...)
	}
	for i, id := range ex.InputIDs {
		if id < 0 {
			return ex, fmt.Errorf("input_ids[%d] = %d is negative", i, id)
		}
	}
	for i, l := range ex.Labels {
		if l < 0 && l != IgnoreIndex {
			return ex, fmt.Errorf("labels[%d] = %d: negative labels must be -100", i, l)
		}
	}
	return ex, nil
}
