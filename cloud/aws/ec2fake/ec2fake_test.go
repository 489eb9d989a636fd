package ec2fake_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/failoverd/failoverd/cloud/aws/ec2fake"
)

func client(srv *ec2fake.Server, region string) *ec2.Client {
	return ec2.New(ec2.Options{
		Region:           region,
		BaseEndpoint:     awssdk.String(srv.URL()),
		Credentials:      credentials.NewStaticCredentialsProvider("AKID", "secret", ""),
		RetryMaxAttempts: 1,
	})
}

func code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func run(token, itype string) *ec2.RunInstancesInput {
	return &ec2.RunInstancesInput{
		ImageId: awssdk.String("ami-0123456789abcdef0"), InstanceType: types.InstanceType(itype),
		MinCount: awssdk.Int32(1), MaxCount: awssdk.Int32(1), ClientToken: awssdk.String(token),
		Placement:         &types.Placement{AvailabilityZone: awssdk.String("eu-west-1b")},
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance, Tags: []types.Tag{{Key: awssdk.String("Name"), Value: awssdk.String("x")}}}},
	}
}

func TestClientTokenSemantics(t *testing.T) {
	srv := ec2fake.New()
	defer srv.Close()
	c := client(srv, "eu-west-1")
	a, err := c.RunInstances(t.Context(), run("tok-1", "m6i.large"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.RunInstances(t.Context(), run("tok-1", "m6i.large"))
	if err != nil {
		t.Fatal(err)
	}
	if *a.ReservationId != *b.ReservationId || *a.Instances[0].InstanceId != *b.Instances[0].InstanceId || srv.Instances() != 1 {
		t.Errorf("same token twice: %s/%s vs %s/%s, %d instances", *a.ReservationId, *a.Instances[0].InstanceId, *b.ReservationId, *b.Instances[0].InstanceId, srv.Instances())
	}
	if got := a.Instances[0]; got.State.Name != types.InstanceStateNamePending || *got.Placement.AvailabilityZone != "eu-west-1b" || got.Tags[0].Value == nil {
		t.Errorf("instance %+v", got)
	}
	if _, err := c.RunInstances(t.Context(), run("tok-1", "m6i.xlarge")); code(err) != "IdempotentParameterMismatch" {
		t.Errorf("same token, other parameters: %v", err)
	}
	// Tokens are per region.
	if _, err := client(srv, "eu-central-1").RunInstances(t.Context(), run("tok-1", "m6i.large")); code(err) != "InvalidParameterValue" {
		t.Errorf("a zone of another region: %v, want InvalidParameterValue", err)
	}
	out, err := c.DescribeInstances(t.Context(), &ec2.DescribeInstancesInput{Filters: []types.Filter{
		{Name: awssdk.String("tag:Name"), Values: []string{"x"}},
		{Name: awssdk.String("instance-state-name"), Values: []string{"running"}},
	}})
	if err != nil || len(out.Reservations) != 1 || out.Reservations[0].Instances[0].LaunchTime == nil {
		t.Errorf("describe: %+v, %v", out, err)
	}
	if out, err := client(srv, "eu-central-1").DescribeInstances(t.Context(), &ec2.DescribeInstancesInput{}); err != nil || len(out.Reservations) != 0 {
		t.Errorf("other region sees %d reservations, %v", len(out.Reservations), err)
	}
}

func TestRejectsWrongRequests(t *testing.T) {
	srv := ec2fake.New()
	defer srv.Close()
	c := client(srv, "eu-west-1")
	// The SDK checks required members itself; a raw request shows the
	// server does too.
	req, _ := http.NewRequest(http.MethodPost, srv.URL(), strings.NewReader("Action=RunInstances&Version=2016-11-15&ImageId=ami-0123456789abcdef0&MaxCount=1"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKID/20250101/eu-west-1/ec2/aws4_request, SignedHeaders=host;x-amz-date, Signature="+strings.Repeat("0", 64))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(body), "<Code>MissingParameter</Code>") {
		t.Errorf("RunInstances without MinCount: HTTP %d %s", resp.StatusCode, body)
	}
	bad := run("", "e2-standard-8")
	if _, err := c.RunInstances(t.Context(), bad); code(err) != "InvalidParameterValue" {
		t.Errorf("a GCP machine type: %v", err)
	}
	bad = run("", "m6i.large")
	bad.UserData = awssdk.String(strings.Repeat("QUFB", 16<<10/3+1))
	if _, err := c.RunInstances(t.Context(), bad); code(err) != "InvalidParameterValue" {
		t.Errorf("oversize user data: %v", err)
	}
	if _, err := c.DescribeInstances(t.Context(), &ec2.DescribeInstancesInput{Filters: []types.Filter{{Name: awssdk.String("nonsense"), Values: []string{"x"}}}}); code(err) != "InvalidParameterValue" {
		t.Errorf("unknown filter: %v", err)
	}
	if _, err := c.TerminateInstances(t.Context(), &ec2.TerminateInstancesInput{InstanceIds: []string{"i-0123456789abcdef0"}}); code(err) != "InvalidInstanceID.NotFound" {
		t.Errorf("terminate unknown: %v", err)
	}
	if _, err := c.DescribeImages(t.Context(), &ec2.DescribeImagesInput{}); code(err) != "InvalidAction" {
		t.Errorf("unimplemented action: %v", err)
	}
	// Unsigned requests are refused.
	resp, err = http.Post(srv.URL(), "application/x-www-form-urlencoded", bytes.NewBufferString("Action=DescribeInstances&Version=2016-11-15"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unsigned request: HTTP %d, want 401", resp.StatusCode)
	}
}

func TestFaults(t *testing.T) {
	srv := ec2fake.New()
	defer srv.Close()
	c := client(srv, "eu-west-1")
	srv.SetNoCapacity("eu-west-1b", true)
	_, err := c.RunInstances(t.Context(), run("", "m6i.large"))
	var re interface{ HTTPStatusCode() int }
	if code(err) != "InsufficientInstanceCapacity" || !errors.As(err, &re) || re.HTTPStatusCode() != 500 {
		t.Errorf("no capacity: %v", err)
	}
	srv.SetNoCapacity("eu-west-1b", false)
	srv.FailNext("RunInstances", "RequestLimitExceeded", 503, 1)
	if _, err := c.RunInstances(t.Context(), run("", "m6i.large")); code(err) != "RequestLimitExceeded" {
		t.Errorf("FailNext: %v", err)
	}
	srv.FailAfter("RunInstances", "InternalError", 500, 1)
	if _, err := c.RunInstances(t.Context(), run("", "m6i.large")); code(err) != "InternalError" || srv.Instances() != 1 {
		t.Errorf("FailAfter: %v, %d instances", err, srv.Instances())
	}
	if srv.Calls("RunInstances") != 3 {
		t.Errorf("Calls = %d", srv.Calls("RunInstances"))
	}
}
